import ArgumentParser
import CTData
import Model
import Training

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a synthetic cohort of CT-like volumes as HDF5 shards.",
        discussion: """
        Cases look like chest CT: a body, two lungs near −850 HU with vessels, and lesions that \
        differ by class — COVID-19 multifocal, bilateral, peripheral ground-glass (−600…−300 HU); \
        CAP focal, lobar consolidation (0…50 HU) — with infection masks. Labels follow the paper's \
        proportions and infection ratios its Table III bands, so the size imbalance that \
        size-balanced sampling corrects is present. Patients have 1–3 scans. The output is a pure \
        function of --seed.

        Example: dsan synth --out data/train --cases 200 --size 32x64x64 --seed 1
        """
    )

    @Option(help: "Directory to write the shards into (created if missing).")
    var out: String

    @Option(help: "Number of cases.")
    var cases: Int

    @Option(help: "Volume size DxHxW (each ≥ \(VolumeSize.minimum)).")
    var size = VolumeSize(32, 64, 64)

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Option(name: .customLong("shard-size"), help: "Cases per shard file.")
    var shardSize = 64

    @Option(help: "Prefix of case and patient ids (use different prefixes for cohorts that are combined).")
    var prefix = "synth"

    @Flag(help: "Replace the shards --out already holds (they are removed once the new ones are complete).")
    var overwrite = false

    func validate() throws {
        guard cases > 0 else { throw ValidationError("--cases must be at least 1, got \(cases)") }
        guard shardSize > 0 else { throw ValidationError("--shard-size must be at least 1, got \(shardSize)") }
    }

    func run() throws {
        let progress = ProgressLine("synth", total: cases)
        let (out, cases) = (self.out, self.cases)
        let interrupt = InterruptNotice.forShards(command: "synth", total: cases, out: out)
        defer { interrupt.cancel() }
        var infos: [CaseInfo] = []
        try CommandErrors.reporting {
            infos = try SyntheticCohort.write(directory: out, cases: cases, size: size.dims, seed: seed, shardSize: shardSize,
                                              prefix: prefix, overwrite: overwrite) { done, _ in
                progress.update(done)
                interrupt.progress = done
            }
        }
        let covid = infos.filter { $0.label == .covid }.count
        print("wrote \(infos.count) cases (\(covid) COVID-19, \(infos.count - covid) CAP) at \(size) to \(out)")
    }
}
