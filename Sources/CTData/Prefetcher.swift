import Foundation

/// One case read and decoded for the network.
public struct LoadedCase: @unchecked Sendable {
    /// Cohort index.
    public var index: Int
    public var info: CaseInfo
    /// Network input, image × lung (DESIGN.md §7), [D, H, W] floats in [0, 1].
    public var input: [Float]
    /// Infection mask as 0/1 floats, [D, H, W] (all zero when the case has none).
    public var infection: [Float]
}

extension Cohort {
    /// Reads case `i` synchronously: image × lung and the infection mask. Refuses a case that
    /// breaks a value rule (`InputRules.caseProblems`: image finite and in [0, 1], binary masks,
    /// lung not empty, ratio as the masks give), naming the file, the case and every problem —
    /// the same sentences `dsan inspect` prints — so no command feeds such a case to a network.
    public func load(_ i: Int) throws -> LoadedCase {
        let (reader, k) = shard(of: i)
        let n = reader.voxels
        var input = [Float](repeating: 0, count: n)
        var lung = [UInt8](repeating: 0, count: n), infectionMask = [UInt8](repeating: 0, count: n)
        try input.withUnsafeMutableBufferPointer { im in
            try lung.withUnsafeMutableBufferPointer { try reader.readImage(k, into: im, scratch: $0) }
        }
        try lung.withUnsafeMutableBufferPointer { try reader.readMask(k, infection: false, into: $0) }
        try infectionMask.withUnsafeMutableBufferPointer { try reader.readMask(k, infection: true, into: $0) }
        let problems = input.withUnsafeBufferPointer { im in
            lung.withUnsafeBufferPointer { l in
                infectionMask.withUnsafeBufferPointer { f in
                    InputRules.caseProblems(info: cases[i], image: reader.imageType == .float32 ? im : nil, lung: l, infection: f)
                }
            }
        }
        if !problems.isEmpty {
            throw DataError(file: reader.path, caseID: cases[i].caseID, problems.joined(separator: "; "))
        }
        for v in 0..<n where lung[v] == 0 { input[v] = 0 }
        let infection = infectionMask.map { Float($0) }
        return LoadedCase(index: i, info: cases[i], input: input, infection: infection)
    }
}

/// Reads this rank's upcoming cases on a background thread while the model computes.
///
/// `schedule` appends cohort indices in the order they will be consumed; `next()` returns them
/// in that order, blocking only when the reader has fallen behind. At most `depth` decoded cases
/// wait in memory. The thread uses this rank's own `Cohort` (its own HDF5 handles; the HDF5
/// wrapper serialises calls), so nothing is shared across processes.
public final class Prefetcher: @unchecked Sendable {
    private let cohort: Cohort
    private let depth: Int
    private let condition = NSCondition()
    private var pending: [Int] = []
    private var ready: [Result<LoadedCase, Error>] = []
    private var stopped = false
    private var thread: Thread?

    public init(cohort: Cohort, depth: Int = 2) {
        precondition(depth >= 1, "Prefetcher: depth \(depth)")
        self.cohort = cohort
        self.depth = depth
        let t = Thread { [weak self] in self?.work() }
        t.name = "dsan-prefetch"
        thread = t
        t.start()
    }

    deinit { stop() }

    /// Queues cases to read, in consumption order.
    public func schedule(_ indices: [Int]) {
        condition.lock()
        pending += indices
        condition.broadcast()
        condition.unlock()
    }

    /// The next scheduled case, in order; rethrows a read error for that case.
    public func next() throws -> LoadedCase {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty {
            precondition(!(pending.isEmpty && ready.isEmpty && inFlight == 0), "Prefetcher.next: nothing scheduled")
            condition.wait()
        }
        let r = ready.removeFirst()
        condition.broadcast()
        return try r.get()
    }

    /// Stops the thread; pending reads are dropped.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private var inFlight = 0

    private func work() {
        while true {
            condition.lock()
            while !stopped && (pending.isEmpty || ready.count + inFlight >= depth) { condition.wait() }
            if stopped { condition.unlock(); return }
            let i = pending.removeFirst()
            inFlight += 1
            condition.unlock()
            let result = Result { try cohort.load(i) }
            condition.lock()
            inFlight -= 1
            ready.append(result)
            condition.broadcast()
            condition.unlock()
        }
    }
}
