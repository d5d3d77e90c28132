import ArgumentParser
import Benchmarks
import Foundation
import Model
import NN

/// `dsan bench tuning`: one of the convs' tuning constants at another value against its default,
/// in alternating pairs in one process (`TuningBenchmark`).
struct BenchTuning: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tuning",
        abstract: "Time a conv tuning constant at another value against its default, in pairs.",
        discussion: """
        Sets one tuning constant (--setting NAME=VALUE) for half of each pair and times, in \
        alternating order, one pass of one conv of the model (--conv, --pass) or the whole \
        training step (without --conv). Prints every pair, the medians, and the pairs' ratio \
        setting ÷ default: its median and the sign test's 95 % interval (from 6 pairs), which \
        says whether this run tells the two apart (below 1: the setting is faster). For a conv \
        it also says whether the setting changes the result's bits. Nothing else in dsan sets \
        these: training always uses the defaults.

        Settings, with their defaults:
          conv-jobs=64
            most jobs of a direct conv's cut (the stem's dW chunks, the
            strided convs' backward blocks)
          strided-backward-positions=2048
            positions per sample from which the strided backward cuts its
            input channels into more than 8 blocks
          winograd-block-mib=8
            MiB of V and M per block of Winograd F(2,3) tiles
          transform-items-per-worker=4
            items per worker of the Winograd transform phases
          packed-direct-forward=1
            1: a direct forward (the stem, the strided convs) by dsan's
            packed GEMM; 0: by OpenBLAS
          packed-direct-backward=1
            1: a direct backward (the stem's dW, the strided convs' dX
            and dW) by dsan's packed GEMM; 0: by OpenBLAS
          panel-parts=0
            parts of each row panel's 64 matrices in the one-block Winograd
            GEMM phase (layers 3-4 at batch 1): 1, 2 or 4; 0 is dsan's rule
          panel-tile-parts=0
            parts of each row panel's tiles in that phase, each repeating
            the panel's weight transform; 0 is dsan's rule
          fused-weight-gradient=1
            1: the Winograd F(2,3) weight gradient by dsan's fused kernel
            at every tile count; 0: by OpenBLAS's GEMMs from 64 tiles per
            sample (the rule before)
          packed-winograd4=1
            1: the 216 GEMMs of the Winograd F(4,3) convs (layer1's
            forward and dX) by dsan's packed GEMM; 0: by OpenBLAS
          winograd4-sample-tiles=64
            4x4x4 tiles per sample from which a 3x3x3 conv takes Winograd
            F(4,3) (a block must still hold 64)
          panel-staging=0
            1: the one-block Winograd GEMM phase's weight transform stages
            its results and copies them out; 0: it stores each straight
            into its matrix (the same bits)
          winograd-row-padding=0
            floats a row of a Winograd block's V and M (F(2,3), F(4,3))
            holds beyond its tiles rounded up to 8 (8: the layout before
            the rule); 0 is dsan's rule (the tiles rounded up to 16, and 16
            more where the row would be a multiple of 1 KiB)
          panel-slice-kib=256
            KiB of a transformed weight panel's slice in the one-block
            Winograd GEMM phase, kept in a core's L2 (the same bits)

        Conv names are those of the model (conv1, layer1.0.conv1, layer2.0.downsample.0, \
        attention, …); an unknown name lists them.

        Examples:
          taskset -c 0 dsan bench tuning --conv layer3.0.conv1 \\
            --setting strided-backward-positions=4096 --size 138x256x256 \\
            --threads 1 --pairs 30
          taskset -c 0-1 dsan bench tuning --setting winograd-block-mib=2 \\
            --threads 2 --pairs 10
        """
    )

    @Option(help: "The constant and its value, NAME=VALUE (see above).") var setting: String
    @Option(help: "A conv of the model to time (default: the whole training step).") var conv: String?
    @Option(help: "The conv pass: forward, backward (dX and dW in one call, as training runs it), dx or dw.")
    var pass: TuningBenchmark.Pass = .backward
    @OptionGroup var model: StepOptions
    @Option(help: "Threads (dsan's loops and OpenBLAS); default: the cores this process may use.") var threads: Int?
    @Option(help: "Pairs to time.") var pairs = 10
    @Option(help: "Runs of the pass per side of a pair, timed together (default: 3 for a conv, 1 for the step).") var runs: Int?
    @Option(help: "Untimed runs of each side first.") var warmup = 1
    @Flag(help: "Print JSON instead of a table.") var json = false

    func parsed() throws -> (ConvTuning.Setting, Int) { try parseTuningSetting(setting) }

    func validate() throws {
        _ = try parsed()
        guard pairs >= 1 else { throw ValidationError("--pairs must be at least 1, got \(pairs)") }
        guard (runs ?? 1) >= 1 else { throw ValidationError("--runs must be at least 1, got \(runs!)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        guard (threads ?? 1) >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads!)") }
        if conv == nil && pass != .backward {
            throw ValidationError("--pass chooses a conv's pass: give --conv NAME too (without it the whole training step is timed)")
        }
    }

    func run() throws {
        let (s, value) = try parsed()
        let benchmark = TuningBenchmark(setting: s, value: value, conv: conv, pass: pass, size: model.size, batch: model.batch,
                                        width: model.width, threads: threads ?? ProcessInfoCores.available, pairs: pairs,
                                        runs: runs ?? (conv == nil ? 1 : 3), warmup: warmup)
        let report = try benchmark.run { i, n in if !json { printError("bench tuning: pair \(i)/\(n)") } }
        if json {
            try printJSON(report)
        } else {
            print(report.text)
        }
    }
}

extension TuningBenchmark.Pass: ExpressibleByArgument {}

/// `NAME=VALUE` of `--setting` (`dsan bench tuning`, `dsan bench threads`), checked against the
/// constant's range.
func parseTuningSetting(_ text: String) throws -> (ConvTuning.Setting, Int) {
    let names = ConvTuning.Setting.allCases.map(\.rawValue).joined(separator: ", ")
    let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
    guard parts.count == 2, let s = ConvTuning.Setting(rawValue: parts[0]) else {
        throw ValidationError("--setting must be NAME=VALUE with NAME one of \(names), got '\(text)'")
    }
    guard let value = Int(parts[1]), s.accepts(value) else {
        let range = s == .panelParts ? "0, 1, 2 or 4"
            : s.greatestValue.map { "from \(s.leastValue) to \($0)" } ?? "of at least \(s.leastValue)"
        throw ValidationError("--setting \(s): the value must be a whole number \(range), got '\(parts[1])'")
    }
    return (s, value)
}
