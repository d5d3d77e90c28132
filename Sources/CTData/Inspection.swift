import Foundation

/// The result of validating every shard of a directory (`dsan inspect`).
public struct InspectionReport: Sendable {
    public var shards: [String] = []
    public var cases: [CaseInfo] = []
    /// [D, H, W] of the first readable shard.
    public var size: [Int]?
    /// Every problem found, each naming the file (and case) and what to do.
    public var problems: [String] = []

    public var isValid: Bool { problems.isEmpty && !cases.isEmpty }

    public func count(_ label: Label) -> Int { cases.filter { $0.label == label }.count }
    public func count(_ group: SamplingGroup) -> Int {
        cases.filter { $0.hasInfectionMask && SamplingGroup(label: $0.label, ratio: $0.infectionRatio) == group }.count
    }
    public func count(_ label: Label, _ band: RatioBand) -> Int {
        cases.filter { $0.label == label && $0.hasInfectionMask && RatioBand(ratio: $0.infectionRatio) == band }.count
    }
    public var withoutInfectionMask: Int { cases.filter { !$0.hasInfectionMask }.count }
}

public enum Inspection {
    /// Relative tolerance between the stored infection ratio and the one the masks give
    /// (float32 storage of the ratio rounds at ~6e-8; 1e-4 allows other writers' float maths).
    public static let ratioTolerance: Double = 1e-4

    /// Validates every shard under `directory` by the rules every command applies
    /// (`InputRules`, Docs/input-rules.md): each shard as `ShardReader` opens it, then every case's
    /// volumes as `Cohort.load` reads them (`InputRules.caseProblems`); case ids unique; one size
    /// for all shards; with `minimumEdge` (the network's, `ModelConfig.minimumInputEdge`),
    /// volumes at least that large. Continues past problems so that one run lists them all.
    public static func run(directory: String, minimumEdge: Int? = nil,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> InspectionReport {
        var report = InspectionReport()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(file: directory, "no such directory")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".h5") }.sorted()
        guard !names.isEmpty else { throw DataError(file: directory, "holds no shards (*.h5)") }
        var seen: [String: String] = [:]
        for (k, name) in names.enumerated() {
            let path = (directory as NSString).appendingPathComponent(name)
            report.shards.append(path)
            let shard: ShardReader
            do { shard = try ShardReader(path: path) } catch {
                report.problems.append("\(error)")
                continue
            }
            if let size = report.size, size != shard.size {
                report.problems.append("\(path): volumes are \(shard.size) but earlier shards have \(size); all shards must share one size")
            } else if report.size == nil {
                report.size = shard.size
                if let minimumEdge, let problem = InputRules.sizeProblem(shard.size, minimumEdge: minimumEdge) {
                    report.problems.append("\(path): \(problem)")
                }
            }
            let n = shard.voxels
            var image = [Float](repeating: 0, count: n)
            var scratch = [UInt8](repeating: 0, count: n)
            var lung = [UInt8](repeating: 0, count: n), infection = [UInt8](repeating: 0, count: n)
            for (i, info) in shard.infos.enumerated() {
                func problem(_ text: String) { report.problems.append(DataError(file: path, caseID: info.caseID, text).description) }
                if let other = seen[info.caseID] { problem("duplicate case id, also in \(other)") }
                seen[info.caseID] = path
                if info.patientID.isEmpty { problem("empty patient_id") }
                do {
                    try image.withUnsafeMutableBufferPointer { im in
                        try scratch.withUnsafeMutableBufferPointer { try shard.readImage(i, into: im, scratch: $0) }
                    }
                    try lung.withUnsafeMutableBufferPointer { try shard.readMask(i, infection: false, into: $0) }
                    try infection.withUnsafeMutableBufferPointer { try shard.readMask(i, infection: true, into: $0) }
                } catch {
                    problem("cannot read volumes: \(error)")
                    continue
                }
                let problems = image.withUnsafeBufferPointer { im in
                    lung.withUnsafeBufferPointer { l in
                        infection.withUnsafeBufferPointer { f in
                            InputRules.caseProblems(info: info, image: shard.imageType == .float32 ? im : nil, lung: l, infection: f)
                        }
                    }
                }
                problems.forEach(problem)
            }
            report.cases += shard.infos
            progress(k + 1, names.count)
        }
        return report
    }

    /// A text histogram of the infection ratio per class on a log axis (the paper's Fig. 1).
    public static func histogram(_ cases: [CaseInfo], width: Int = 40) -> String {
        let edges: [Float] = [0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 1.0001]
        var lines: [String] = []
        for label in [Label.covid, .cap] {
            let ratios = cases.filter { $0.label == label && $0.hasInfectionMask }.map(\.infectionRatio)
            var counts = [Int](repeating: 0, count: edges.count - 1)
            for r in ratios {
                if let b = (0..<(edges.count - 1)).first(where: { r >= edges[$0] && r < edges[$0 + 1] }) { counts[b] += 1 }
            }
            let peak = max(1, counts.max() ?? 1)
            lines.append("\(label == .covid ? "COVID-19" : "CAP") (\(ratios.count) cases), infection ratio:")
            for b in counts.indices {
                let range = String(format: "%7.4f–%-7.4f", edges[b], min(1, edges[b + 1]))
                let bar = String(repeating: "█", count: counts[b] * width / peak)
                lines.append("  \(range) \(String(format: "%5d", counts[b])) \(bar)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
