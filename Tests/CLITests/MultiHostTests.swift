import Foundation
import Testing

/// Whether this machine lets the tests make network namespaces (root, iproute2, mpirun): the
/// multi-host tests run `launch/hosts.sh`, which needs them.
let namespacesAvailable: Bool = {
    guard getuid() == 0, mpirunPath != nil, LaunchScriptTests.packageRoot != nil,
          let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
    else { return false }
    let probe = "dsanprobe\(getpid())"
    guard (try? run(ip, ["netns", "add", probe]))?.status == 0 else { return false }
    _ = try? run(ip, ["netns", "del", probe])
    return true
}()

/// One `launch/hosts.sh` job running in the background: 2 hosts × 2 ranks on its own subnet and
/// names, its output in files. `finish()` ends it (SIGTERM, which the script traps to remove what
/// it made) and removes anything it may have left, so a failing test leaves nothing behind.
final class HostsJob {
    let name: String
    let subnet: String
    let hosts: Int
    let process = Process()
    let stdoutPath: String, stderrPath: String
    let started = Date()

    init(name: String, subnet: String, hosts: Int = 2, ranksPerHost: Int = 2, directory: String, command: [String]) throws {
        self.name = name
        self.subnet = subnet
        self.hosts = hosts
        stdoutPath = directory + "/hosts.out"
        stderrPath = directory + "/hosts.err"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        guard let root = LaunchScriptTests.packageRoot else { throw CocoaError(.fileNoSuchFile) }
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root + "/launch/hosts.sh", "--name", name, "--subnet", subnet, "--hosts", "\(hosts)",
                             "--ranks-per-host", "\(ranksPerHost)", "--"] + command
        var env = ProcessInfo.processInfo.environment
        env["DSAN_BIN"] = dsanPath
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// Waits until `condition` holds or the job has ended; false when `seconds` passed first.
    func wait(seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            if !process.isRunning { return condition() }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return condition()
    }

    /// Waits for the job to end by itself; nil when it was still running after `seconds`.
    func exitStatus(within seconds: Double) -> Int32? {
        _ = wait(seconds: seconds) { !process.isRunning }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// PIDs of the processes in host `i`'s namespace whose command name is `command`.
    func processes(onHost i: Int, named command: String) -> [Int32] {
        let pids = (try? run(ipPath, ["netns", "pids", "\(name)-h\(i)"]))?.stdout ?? ""
        return pids.split(separator: "\n").compactMap { Int32($0) }.filter { pid in
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            return comm.trimmingCharacters(in: .whitespacesAndNewlines) == command
        }
    }

    /// Ends the job if it still runs and removes whatever it left (idempotent).
    func finish() {
        if process.isRunning {
            process.terminate()
            _ = wait(seconds: 30) { !process.isRunning }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        for i in 1...hosts {
            let ns = "\(name)-h\(i)"
            let pids = (try? run(ipPath, ["netns", "pids", ns]))?.stdout ?? ""
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            _ = try? run(ipPath, ["netns", "del", ns])
            _ = try? run(ipPath, ["link", "del", "\(name)v\(i)"])
        }
        _ = try? run(ipPath, ["link", "del", "\(name)br"])
    }

    /// Processes on this machine that belong to the job after it ended: a `dsan` whose arguments
    /// name `marker` (its run directory) or an `orted` of this job's subnet.
    func survivors(marker: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> String? in
            guard Int32(entry) != nil,
                  let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let line = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            let isDsan = line.contains(dsanPath) && line.contains(marker)
            let isOrted = line.contains("orted") && line.contains(subnet + ".")
            return isDsan || isOrted ? "\(entry): \(line)" : nil
        }
    }
}

let ipPath = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "ip"

/// The last record of every global step: a resumed run appends the steps after its checkpoint
/// again, and the later records are the ones that count.
func stepsByGlobalStep(_ run: String) throws -> [Int: Step] {
    var records: [Int: Step] = [:]
    for s in try steps(run) { records[s.globalStep] = s }
    return records
}

/// dsan across 2 hosts × 2 ranks over TCP, each host a network namespace (launch/hosts.sh):
/// the same steps as one rank, and a lost link or host ends the whole job.
@Suite(.serialized, .enabled(if: namespacesAvailable, "needs root, iproute2 and mpirun to make network namespaces as hosts"))
struct MultiHostTests {
    /// Seconds a collective waits before the job is declared hung (timeout_s): short, so a fault
    /// ends the job soon. A lost host must end everything within timeout_s + 60 s.
    static let timeout = 20.0

    /// A small run: width 4, 16×32×32 volumes, `timeout_s` from the configuration file, a
    /// checkpoint every 2 steps.
    static func config(_ directory: String, epochs: Int) throws -> String {
        let path = directory + "/hosts.yaml"
        try """
        width: 4
        attention: true
        epochs: \(epochs)
        batch: 4
        lr: 2.0e-4
        seed: 1
        timeout_s: \(Int(timeout))
        checkpoint_every: 2
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// 2 hosts × 2 ranks compute the same steps as one rank (the equivalence test's tolerances,
    /// Winograd convolutions: 2e-4 of each gradient tensor's largest entry), with a global batch
    /// of 5 that does not divide by 4 ranks.
    @Test func twoHostsComputeTheSameStepsAsOneRank() throws {
        let base = try scratchDirectory("hosts-eq")
        let stepCount = 3
        let args = ciArguments + ["--data", trainingData, "--batch", "5", "--steps", "\(stepCount)"]
        let one = try train(ranks: 1, args + ["--out", base + "/r1", "--dump-gradients", base + "/g1.h5"])
        #expect(one.status == 0, "\(one.stderr)")
        let job = try HostsJob(name: "dsheq\(getpid() % 100000)", subnet: "10.213.11", directory: base,
                               command: ["dsan", "train"] + args + ["--out", base + "/r4", "--dump-gradients", base + "/g4.h5"])
        defer { job.finish() }
        let status = job.exitStatus(within: 300)
        #expect(status == 0, "launch/hosts.sh: \(String(describing: status))\n\(job.stderr)")
        #expect(job.stderr.contains("host 2 = namespace \(job.name)-h2, address 10.213.11.2"), "\(job.stderr)")
        let reference = try steps(base + "/r1"), records = try steps(base + "/r4")
        #expect(records.count == stepCount && reference.count == stepCount)
        for (a, b) in zip(reference, records) {
            #expect(abs(a.loss - b.loss) <= 1e-4 * abs(a.loss), "step \(a.globalStep): \(a.loss) vs \(b.loss)")
            #expect(b.shares.count == 4, "step \(b.globalStep): \(b.shares.count) ranks reported")
            #expect(b.shares.flatMap { $0 } == a.shares.flatMap { $0 }, "step \(b.globalStep)")
        }
        let relative = try largestRelativeDifference(base + "/g1.h5", base + "/g4.h5")
        #expect(relative.difference <= 2e-4, "\(relative.name): \(relative.difference)")
    }

    /// The link of host 2 goes down mid-training: mpirun itself returns non-zero within
    /// timeout_s + 60 s, a message names the host, and no dsan or orted is left anywhere.
    @Test func cutLinkEndsTheWholeJob() throws {
        let base = try scratchDirectory("hosts-cut")
        let out = base + "/run"
        let job = try HostsJob(name: "dshcut\(getpid() % 10000)", subnet: "10.213.12", directory: base,
                               command: ["dsan", "train", "--config", try Self.config(base, epochs: 100),
                                         "--data", trainingData, "--out", out])
        defer { job.finish() }
        let training = job.wait(seconds: 180) { ((try? steps(out))?.count ?? 0) >= 2 }
        try #require(training, "training did not reach step 2:\n\(job.stderr)")
        let cut = try run(ipPath, ["link", "set", "\(job.name)v2", "down"])
        try #require(cut.status == 0, "\(cut.stderr)")
        let cutAt = Date()
        let status = job.exitStatus(within: Self.timeout + 60 + 30)
        let elapsed = Date().timeIntervalSince(cutAt)
        #expect(status != nil && status != 0, "launch/hosts.sh: \(String(describing: status)) after \(elapsed) s\n\(job.stderr)")
        #expect(elapsed <= Self.timeout + 60, "the job took \(elapsed) s to end after the link was cut")
        #expect(job.stderr.contains("host 2 (10.213.12.2) has not answered"), "\(job.stderr)")
        #expect(!job.stderr.contains("left running on host"), "\(job.stderr)")
        let left = job.survivors(marker: out)
        #expect(left.isEmpty, "\(left)")
    }

    /// Every rank of host 2 is killed mid-training: the job ends the same way, naming a rank of
    /// host 2; then `--resume` continues from the last checkpoint and reaches the losses of an
    /// uninterrupted run.
    @Test func killedHostEndsTheJobAndResumeCatchesUp() throws {
        let base = try scratchDirectory("hosts-kill")
        let epochs = 6   // 12 cases, batch 4: 3 steps per epoch, 18 steps
        let config = try Self.config(base, epochs: epochs)
        let whole = try HostsJob(name: "dshw\(getpid() % 100000)", subnet: "10.213.13", directory: base + "/",
                                 command: ["dsan", "train", "--config", config, "--data", trainingData, "--out", base + "/whole"])
        defer { whole.finish() }
        #expect(whole.exitStatus(within: 300) == 0, "\(whole.stderr)")
        whole.finish()

        let out = base + "/split"
        try FileManager.default.createDirectory(atPath: base + "/k", withIntermediateDirectories: true)
        let job = try HostsJob(name: "dshk\(getpid() % 100000)", subnet: "10.213.13", directory: base + "/k",
                               command: ["dsan", "train", "--config", config, "--data", trainingData, "--out", out])
        defer { job.finish() }
        // After the checkpoint of step 4, before the run can end.
        let training = job.wait(seconds: 180) { ((try? steps(out))?.count ?? 0) >= 5 }
        try #require(training, "training did not reach step 5:\n\(job.stderr)")
        let victims = job.processes(onHost: 2, named: "dsan")
        try #require(victims.count == 2, "host 2 runs \(victims.count) dsan processes")
        for pid in victims { kill(pid, SIGKILL) }
        let killedAt = Date()
        let status = job.exitStatus(within: Self.timeout + 60 + 30)
        let elapsed = Date().timeIntervalSince(killedAt)
        #expect(status != nil && status != 0, "launch/hosts.sh: \(String(describing: status))\n\(job.stderr)")
        #expect(elapsed <= Self.timeout + 60, "the job took \(elapsed) s to end after host 2's ranks were killed")
        let err = job.stderr
        #expect((err.contains("rank 2 ") || err.contains("rank 3 ")) && err.contains("on node 10.213.13.2"), "\(err)")
        #expect(!err.contains("left running on host"), "\(err)")
        let left = job.survivors(marker: out)
        #expect(left.isEmpty, "\(left)")
        let done = try steps(out).count
        try #require(done < 3 * epochs, "the run ended (\(done) steps) before host 2 was killed")
        job.finish()

        try FileManager.default.createDirectory(atPath: base + "/r", withIntermediateDirectories: true)
        let resumed = try HostsJob(name: "dshr\(getpid() % 100000)", subnet: "10.213.13", directory: base + "/r",
                                   command: ["dsan", "train", "--config", config, "--data", trainingData, "--out", out, "--resume"])
        defer { resumed.finish() }
        #expect(resumed.exitStatus(within: 300) == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming \(out)/last.h5"), "\(resumed.stderr)")
        let a = try stepsByGlobalStep(base + "/whole"), b = try stepsByGlobalStep(out)
        #expect(a.count == 3 * epochs && b.count == a.count)
        for (step, record) in a.sorted(by: { $0.key < $1.key }) {
            #expect(b[step]?.loss == record.loss, "global step \(step): \(record.loss) uninterrupted, \(String(describing: b[step]?.loss)) resumed")
        }
        #expect(try largestDifference(base + "/whole/last.h5", out + "/last.h5").difference == 0)
    }
}
