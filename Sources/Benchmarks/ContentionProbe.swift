import BLAS
import Foundation
import Model
import NN
import Planning
import Tensor

/// The node-contention probe of `dsan plan --save-profile` (Docs/scaling.md, "Ranks on a node").
///
/// The probe is a real training step of the model (forward, losses, backward, Adam at batch 1)
/// on a small volume: the same kernels in the same proportions as `dsan train`, so it leans on
/// the memory system as a rank does — Adam streams 1 GB of weights, gradients and moments at
/// width 64, the convs' im2col and Winograd buffers and the batch norms' passes stream the
/// activations — where sgemm alone, which works from cache, would hardly slow down. Each copy is
/// a process of its own pinned with `taskset` to T cores of its own; the copies start together
/// (each waits until all are built) and repeat the step for a fixed time, so every repetition
/// they report ran while all k did.
public enum ContentionProbe {
    /// A probe failed: what, and what to do.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs one copy alone on the first T cores, then k copies together on disjoint T cores, and
    /// returns the median slowdown and the spread of the copies' repetition times together.
    public static func measure(copies k: Int, threads t: Int, width: Int, size: VolumeSize, seconds: Double,
                               progress: (String) -> Void) throws -> NodeContention {
        let cores = allowedCores()
        guard k * t <= cores.count else {
            throw Failure(description: "contention probe: \(k) copies × \(t) threads need \(k * t) cores, this process may use \(cores.count) (\(cores.map(String.init).joined(separator: ",")))")
        }
        guard let taskset = findExecutable("taskset") else {
            throw Failure(description: "contention probe: 'taskset' (util-linux) not found on PATH; install it, or pass --contention-copies 1 to skip the probe")
        }
        progress("plan: contention probe, a training step at \(size), width \(width): 1 copy alone, then \(k) together, \(String(format: "%.0f", seconds)) s each")
        let alone = try run(copies: 1, threads: t, cores: cores, taskset: taskset, width: width, size: size, seconds: seconds)
        let together = try run(copies: k, threads: t, cores: cores, taskset: taskset, width: width, size: size, seconds: seconds)
        let all = together.flatMap { $0 }
        let slowdown = median(all) / median(alone[0])
        let mean = all.reduce(0, +) / Double(all.count)
        let variance = all.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, all.count - 1))
        progress(String(format: "plan: probe step alone %.3f s (median of %d), %d together %.3f s (median of %d): slowdown %.2f×, spread %.1f %%",
                          median(alone[0]), alone[0].count, k, median(all), all.count, slowdown, 100 * variance.squareRoot() / mean))
        return NodeContention(copies: k, threadsPerCopy: t, slowdown: slowdown, spread: variance.squareRoot() / mean)
    }

    public static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// k worker processes (`dsan plan --probe-worker`), copy i on cores [i·T, (i+1)·T) of the
    /// allowed list; each prints its repetition times as JSON.
    static func run(copies k: Int, threads t: Int, cores: [Int], taskset: String, width: Int, size: VolumeSize,
                    seconds: Double) throws -> [[Double]] {
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-probe-\(getpid())-\(k)").path
        try? FileManager.default.removeItem(atPath: ready)
        try FileManager.default.createDirectory(atPath: ready, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: ready) }
        let exe = Bundle.main.executablePath ?? CommandLine.arguments[0]
        var processes: [(Process, Pipe)] = []
        for i in 0..<k {
            let mine = cores[(i * t)..<((i + 1) * t)].map(String.init).joined(separator: ",")
            let p = Process(), out = Pipe()
            p.executableURL = URL(fileURLWithPath: taskset)
            p.arguments = ["-c", mine, exe, "plan", "--probe-worker", "--threads-per-rank", "\(t)", "--width", "\(width)",
                           "--probe-size", "\(size)", "--probe-seconds", "\(seconds)", "--contention-copies", "\(k)",
                           "--probe-ready", ready]
            p.standardOutput = out
            try p.run()
            processes.append((p, out))
        }
        var results: [[Double]] = []
        for (i, (p, out)) in processes.enumerated() {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0, let times = try? JSONDecoder().decode([Double].self, from: data), !times.isEmpty else {
                for (q, _) in processes where q.isRunning { q.terminate() }
                throw Failure(description: "contention probe: copy \(i + 1) of \(k) failed (exit status \(p.terminationStatus)); its messages are above")
            }
            results.append(times)
        }
        return results
    }

    /// The worker: builds the model, announces itself in `ready`, waits for the other copies,
    /// then repeats the step for `seconds` after one warm-up; prints the times of the
    /// repetitions that ended within that window, as a JSON array.
    public static func worker(copies k: Int, threads t: Int, width: Int, size: VolumeSize, seconds: Double, ready: String) throws {
        Parallel.threads = t
        BLAS.threads = t
        let shape = Shape5(n: 1, c: 1, d: size.d, h: size.h, w: size.w)
        let model = ResNet3D(config: ModelConfig(width: width, attention: true), seed: 1)
        let input = Tensor(zeros: shape.dims), masks = Tensor(zeros: shape.dims)
        var rng = SplitMix64(seed: 2)
        input.fillUniform(0, 1, rng: &rng)
        for i in stride(from: 0, to: masks.count, by: 7) { masks.data[i] = 1 }
        let objective = Objective(lambda: 0.5)
        let optimizer = Adam(parameters: model.registry.parameters.map { ($0.value, $0.gradient) })
        model.training = true
        func step() throws {
            model.forward(input)
            model.zeroGradients()
            _ = try objective.evaluate(model: model, labels: [1], masks: masks) { $0 }
            objective.backward(model: model)
            optimizer.step()
        }
        try step()   // warm-up: buffers allocated, pages touched
        guard FileManager.default.createFile(atPath: ready + "/\(getpid())", contents: nil) else {
            throw Failure(description: "contention probe: cannot write to \(ready)")
        }
        let waitStart = Date()
        while ((try? FileManager.default.contentsOfDirectory(atPath: ready))?.count ?? 0) < k {
            guard Date().timeIntervalSince(waitStart) < 600 else {
                throw Failure(description: "contention probe: the other copies did not start within 600 s")
            }
            usleep(10_000)
        }
        var times: [Double] = []
        let start = Date()
        while true {
            let t0 = Date()
            try step()
            let end = Date()
            if end.timeIntervalSince(start) > seconds { break }
            times.append(end.timeIntervalSince(t0))
        }
        // At least one repetition, even when one step outlasts the window.
        if times.isEmpty { times.append(Date().timeIntervalSince(start)) }
        print(String(decoding: try JSONEncoder().encode(times), as: UTF8.self))
    }

    /// The cores this process may run on, from `Cpus_allowed_list` in /proc/self/status
    /// ("0-3,8"); 0…online−1 if it cannot be read.
    public static func allowedCores() -> [Int] {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) {
            let cores = coreList(String(line.dropFirst("Cpus_allowed_list:".count)))
            if !cores.isEmpty { return cores }
        }
        return Array(0..<ProcessInfoCores.online)
    }

    /// A kernel CPU list ("0-3,8", as in `Cpus_allowed_list`) as core numbers in its order;
    /// malformed parts are left out.
    public static func coreList(_ text: String) -> [Int] {
        var cores: [Int] = []
        for part in text.trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            if ends.count == 1, let a = ends[0] { cores.append(a) }
            else if ends.count == 2, let a = ends[0], let b = ends[1], a <= b { cores += Array(a...b) }
        }
        return cores
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
