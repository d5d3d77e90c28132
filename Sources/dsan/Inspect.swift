import ArgumentParser
import CTData
import Foundation
import Model
import Training

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate every shard of a directory and print counts per label, sampling group and ratio band.",
        discussion: """
        Checks each shard's datasets, shapes and types, then every case: masks binary, lung mask \
        not empty, infection ratio consistent with the masks, image finite and in [0, 1], case ids \
        unique, one volume size for all shards, volumes at least the network's minimum. These are \
        the rules train, cv and predict apply (Docs/input-rules.md). Lists every problem and exits \
        non-zero if any.
        """
    )

    @Argument(help: "Directory of shards (*.h5).")
    var directory: String

    @Flag(help: "Skip the per-class histogram of the infection ratio.")
    var noHistogram = false

    func run() throws {
        var progress: ProgressLine?
        let report = try Inspection.run(directory: directory, minimumEdge: ModelConfig.minimumInputEdge) { done, total in
            if progress == nil { progress = ProgressLine("inspect", total: total) }
            progress?.update(done, unit: "shards")
        }
        print("\(report.shards.count) shards, \(report.cases.count) cases, size \(report.size.map { $0.map(String.init).joined(separator: "x") } ?? "?")")
        print("labels: COVID-19 \(report.count(.covid)), CAP \(report.count(.cap))"
              + (report.withoutInfectionMask > 0 ? ", without infection mask \(report.withoutInfectionMask)" : ""))
        print("sampling groups (DESIGN.md §3):")
        for g in SamplingGroup.allCases { print("  \(g.description.padding(toLength: 26, withPad: " ", startingAt: 0)) \(report.count(g))") }
        print("infection-ratio bands:        < 0.005  0.005–0.030  > 0.030")
        for label in [Label.covid, .cap] {
            let c = RatioBand.allCases.map { report.count(label, $0) }
            let name = (label == .covid ? "COVID-19" : "CAP").padding(toLength: 26, withPad: " ", startingAt: 0)
            print("  " + name + String(format: " %7d  %11d  %7d", c[0], c[1], c[2]))
        }
        if !noHistogram { print(Inspection.histogram(report.cases)) }
        if !report.problems.isEmpty {
            for p in report.problems { printError("problem: \(p)") }
            throw ExitCode.failure.withMessage("\(report.problems.count) problem(s) in \(directory)")
        }
        print("ok: every shard is valid")
    }
}
