import Foundation
import Tensor
import Training

/// TEST-ONLY: the fault the multi-rank fault tests (Tests/CLITests/TrainTests.swift) inject into
/// `dsan train`, read from the environment variable `DSAN_FAULT=KIND:RANK:STEP`: at global step
/// STEP, rank RANK makes its loss NaN (`nan-loss`) or a reduced gradient infinite (`nan-gradient`), exits at once without a word (`exit`), or
/// stops answering (`hang`). It reaches the trainer only through `Trainer.stepObserver`, the
/// trainer's test seam; the trainer itself reads no environment. Not for users: unset, it does
/// nothing.
final class TestFaultInjection: StepObserver {
    enum Kind: String, CaseIterable { case nanLoss = "nan-loss", nanGradient = "nan-gradient", exit, hang }

    static let variable = "DSAN_FAULT"

    let kind: Kind
    let rank: Int
    let step: Int

    init(kind: Kind, rank: Int, step: Int) {
        self.kind = kind
        self.rank = rank
        self.step = step
    }

    /// The fault `DSAN_FAULT` asks for; nil when it is unset.
    static func fromEnvironment() throws -> TestFaultInjection? {
        guard let spec = ProcessInfo.processInfo.environment[variable] else { return nil }
        let parts = spec.split(separator: ":").map(String.init)
        guard parts.count == 3, let kind = Kind(rawValue: parts[0]), let r = Int(parts[1]), let s = Int(parts[2]) else {
            throw ConfigError(source: variable, message: "expected \(Kind.allCases.map(\.rawValue).joined(separator: "|")):RANK:STEP, got `\(spec)`")
        }
        return TestFaultInjection(kind: kind, rank: r, step: s)
    }

    func forwardFinished(globalStep: Int, rank: Int, logits: Tensor) {
        guard rank == self.rank, globalStep == step else { return }
        switch kind {
        case .exit: Foundation.exit(0)
        case .hang: while true { sleep(60) }
        case .nanLoss: if logits.count > 0 { logits.data[0] = .nan }
        case .nanGradient: break
        }
    }

    func gradientsReduced(globalStep: Int, rank: Int, gradients: [Tensor]) {
        guard kind == .nanGradient, rank == self.rank, globalStep == step, let g = gradients.last, g.count > 0 else { return }
        g.data[0] = .infinity
    }
}
