import ArgumentParser
import Foundation
import Training
import Workflows
import Model

/// A volume size `DxHxW` (depth × height × width, voxels), e.g. `138x256x256`.
struct VolumeSize: ExpressibleByArgument, CustomStringConvertible {
    var d, h, w: Int
    /// The smallest dimension the model accepts (DESIGN.md §1: every size ≥ 16 must work), from
    /// its strides: `ModelConfig.minimumInputEdge`.
    static let minimum = ModelConfig.minimumInputEdge

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x").map { Int($0) }
        guard parts.count == 3, let d = parts[0], let h = parts[1], let w = parts[2],
              [d, h, w].allSatisfy({ $0 >= Self.minimum && $0 <= 4096 }) else { return nil }
        self.d = d; self.h = h; self.w = w
    }

    init(_ d: Int, _ h: Int, _ w: Int) { self.d = d; self.h = h; self.w = w }

    var dims: [Int] { [d, h, w] }
    var description: String { "\(d)x\(h)x\(w)" }
    static var defaultValueDescription: String { "DxHxW" }
}

/// Progress on standard error: one updating line on a terminal, plain lines otherwise (batch
/// logs), each with a count, a rate and an ETA.
final class Progress {
    let label: String
    let total: Int
    let start = Date()
    let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastPrint = Date.distantPast

    init(_ label: String, total: Int) {
        self.label = label
        self.total = total
    }

    func update(_ done: Int, unit: String = "cases") {
        let now = Date()
        let finished = done >= total
        if !finished && now.timeIntervalSince(lastPrint) < (isTerminal ? 0.2 : 5) { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "%@: %d/%d %@ (%.1f %@/s, %@ %@)", label, done, total, unit, rate, unit,
                          finished ? "took" : "ETA", DurationText.short(finished ? elapsed : eta))
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (finished ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data((Self.timestamp() + " " + line + "\n").utf8))
        }
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
