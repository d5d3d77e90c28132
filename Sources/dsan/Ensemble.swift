import ArgumentParser
import CTData
import Foundation
import Evaluation

struct Ensemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit the dual-sampling ensemble of a uniform- and a size-balanced-sampling run.",
        discussion: """
        P = w * P_US + (1 - w) * P_SS with w = w_out when the infection ratio r < 0.001 or \
        r > 0.030 and w = w_in otherwise (also when r is unknown), as in the paper's Eq. (5). \
        w_out and w_in are searched on a 0.01 grid to maximise the AUC on the validation \
        predictions of both runs (RUN/val_predictions.csv, the same cases in both); ties go to the \
        higher accuracy at 0.5, then to the weights closest to the paper's (0.35, 0.96). The \
        ensemble file (JSON, see Docs/evaluation.md) names RUN/best.h5 of each run relative to \
        itself. With --paper-weights, nothing is fitted and the paper's weights are written.
        """
    )

    @Option(help: "Run directory of the uniform-sampling model (RUN/best.h5, RUN/val_predictions.csv).")
    var us: String

    @Option(help: "Run directory of the size-balanced-sampling model.")
    var ss: String

    @Option(help: "Ensemble file to write (JSON).")
    var out: String

    @Flag(help: "Write the paper's weights (w_out 0.35, w_in 0.96) without fitting (runs without a validation set).")
    var paperWeights = false

    func run() throws {
        try CommandErrors.reporting {
            let usCheckpoint = try checkpoint(us), ssCheckpoint = try checkpoint(ss)
            let outDir = (out as NSString).deletingLastPathComponent
            let relUS = EnsembleFile.relativePath(usCheckpoint, from: outDir.isEmpty ? "." : outDir)
            let relSS = EnsembleFile.relativePath(ssCheckpoint, from: outDir.isEmpty ? "." : outDir)
            let file: EnsembleFile
            if paperWeights {
                file = EnsembleFile(usCheckpoint: relUS, ssCheckpoint: relSS, rule: .paper)
                print("w_out = \(file.rule.wOut) (r < 0.001 or r > 0.030), w_in = \(file.rule.wIn): the paper's weights, not fitted")
            } else {
                let usFile = try predictionsFile(us), ssFile = try predictionsFile(ss)
                let cases = try EnsembleCase.join(us: try PredictionsCSV.read(usFile), ss: try PredictionsCSV.read(ssFile),
                                                  usFile: usFile, ssFile: ssFile)
                guard !cases.isEmpty else {
                    throw DataError(file: usFile, "has no cases; train with a validation set to fit the ensemble")
                }
                let fit = EnsembleFit(cases)
                file = EnsembleFile(usCheckpoint: relUS, ssCheckpoint: relSS, fit: fit)
                let covid = cases.filter { $0.label == .covid }.count
                print("validation: \(fit.cases) cases (\(covid) COVID-19, \(fit.cases - covid) CAP); \(fit.outerCases) weighted by w_out, \(fit.innerCases) by w_in")
                print("w_out = \(fit.rule.wOut) (r < 0.001 or r > 0.030), w_in = \(fit.rule.wIn)")
                print("validation AUC: US \(Evaluation.format(fit.usAUC)), SS \(Evaluation.format(fit.ssAUC)), ensemble \(Evaluation.format(fit.auc)) (accuracy \(Evaluation.format(fit.accuracy)))")
                if fit.auc == nil { print("note: the validation cases are all of one class, so the accuracy chose the weights") }
            }
            if !outDir.isEmpty { try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true) }
            try file.write(to: out)
            print("wrote \(out)")
        }
    }

    /// RUN/best.h5, which must exist.
    private func checkpoint(_ run: String) throws -> String {
        let path = (run as NSString).appendingPathComponent("best.h5")
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError(file: path, "no such file; --us and --ss take run directories written by `dsan train`")
        }
        return path
    }

    /// RUN/val_predictions.csv, which must exist.
    private func predictionsFile(_ run: String) throws -> String {
        let path = (run as NSString).appendingPathComponent("val_predictions.csv")
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError(file: path, "no such file; the ensemble is fitted on validation predictions: train both runs with a validation set (--fold K, or --val DIR), or pass --paper-weights")
        }
        return path
    }
}
