import CTData
import Foundation
import Model
import Training

/// A run that cannot fit in this machine's memory, refused before anything is allocated.
public struct ResourceError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Everything `dsan train` checks once at start, on every rank, before the trainer builds a
/// model: the data by the input rules (`InputRules.checkTraining`: every shard rule, volumes at
/// least the network's minimum edge, a non-empty training split and validation set, the
/// sampler's checks), then the memory the model needs (`checkMemory`). Returns the warnings for
/// the caller to show. `dsan cv` calls the same before its first fold.
public func checkTrainingInputs(_ request: TrainRequest, ranks: Int) throws -> [String] {
    let c = request.config
    let check = try InputRules.checkTraining(data: request.data, validation: request.validation, fold: c.fold, folds: c.folds,
                                             seed: c.seed, sampling: c.sampling.rawValue, batch: c.batch,
                                             minimumEdge: ModelConfig.minimumInputEdge)
    if c.fold >= 0 || request.validation != nil, check.validationCases == 0 {
        throw DataError(file: request.validation ?? request.data, "the validation set has no case, so no model can be chosen by validation" + InputRules.seePage)
    }
    try checkMemory(config: c, size: check.size, ranks: ranks)
    return check.warnings
}

/// Refuses a configuration whose tensors cannot exist on this machine: a lower bound on one
/// rank's memory (`ModelFootprint.trainingBytes`: parameters with gradients and Adam moments,
/// and the activations of the cases a rank runs at once) against the physical memory. Being a
/// lower bound it never refuses a run that fits; it stops `--width 100000` (10¹⁴ parameters)
/// with a sentence instead of a failed allocation and SIGABRT.
public func checkMemory(config c: TrainConfig, size: [Int], ranks: Int) throws {
    let footprint = ModelFootprint(config: ModelConfig(width: c.width, attention: c.attention), input: size)
    let share = (c.batch + ranks - 1) / ranks
    let cases = c.microBatch > 0 ? min(c.microBatch, share) : share
    let needed = footprint.trainingBytes(cases: cases)
    let available = Double(ProcessInfo.processInfo.physicalMemory)
    if needed > available {
        throw ResourceError(message: "width \(c.width) at \(size.map(String.init).joined(separator: "×")) needs at least \(bytes(needed)) per rank "
            + "(\(String(format: "%.3g", footprint.parameters)) parameters with their gradients and Adam moments, and the activations of \(cases) case(s) at once), "
            + "this machine has \(bytes(available)): use a smaller --width (64 is the paper's), a smaller --batch or --micro-batch, or smaller volumes" + InputRules.seePage)
    }
}

/// "812.3 TB", "23.4 GB", … (powers of 1000).
func bytes(_ b: Double) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    var v = b, u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    return String(format: u == 0 ? "%.0f %@" : "%.1f %@", v, units[u])
}
