// The α-β cost model of the collectives a training step makes (Docs/scaling.md).

/// A network described by Hockney's α-β model — a message of m bytes between two ranks takes
/// α + m / β — and two terms that a link measured under dsan's own traffic shows
/// (`dsan bench allreduce --save-network`, Docs/scaling.md):
///
/// - a fixed cost per ring all-reduce, `allreduceOverhead` (the pipeline filling and draining at
///   each of the ring's steps, the rendezvous of its first message, TCP's window opening again
///   after the link was idle): what a straight line through the ring's times at several sizes
///   meets at zero bytes;
/// - `queueDelay`, the extra time a small all-reduce (a batch-norm round) takes while a gradient
///   bucket is on the same link: its message waits behind the bucket's messages already queued in
///   MPI, the kernel and the switch.
///
/// β is the *effective* rate one rank sends at while it also receives (a ring step does both),
/// not the link's nominal rate. The presets are typical, not measured here: InfiniBand HDR
/// (200 Gb/s nominal; ~12 GB/s achieved by MPI point-to-point at large messages, ~2 µs latency),
/// 10 GbE over TCP (~1.1 GB/s, ~30 µs) and 1 GbE over TCP (1 Gbit/s × 1448/1538, the TCP payload
/// of a full 1500-byte frame with its Ethernet overhead: 0.118 GB/s; ~50 µs); they have no
/// overhead or queueing terms, which only a measurement of the links gives.
public struct NetworkModel: Codable, Equatable, Sendable {
    public var name: String
    /// α, seconds per message.
    public var latency: Double
    /// β, bytes per second.
    public var bandwidth: Double
    /// Seconds every ring all-reduce costs beyond its messages' α and β (0 for the presets).
    public var allreduceOverhead: Double
    /// Seconds a small all-reduce waits when it meets a gradient bucket on the link (0 for the
    /// presets).
    public var queueDelay: Double

    public init(name: String, latency: Double, bandwidth: Double, allreduceOverhead: Double = 0, queueDelay: Double = 0) {
        precondition(latency >= 0 && bandwidth > 0 && allreduceOverhead >= 0 && queueDelay >= 0,
                     "NetworkModel: α \(latency), β \(bandwidth), overhead \(allreduceOverhead), queue \(queueDelay)")
        self.name = name
        self.latency = latency
        self.bandwidth = bandwidth
        self.allreduceOverhead = allreduceOverhead
        self.queueDelay = queueDelay
    }

    private enum CodingKeys: String, CodingKey { case name, latency, bandwidth, allreduceOverhead, queueDelay }

    /// Reads files written before the overhead and queueing terms existed (they are 0 there).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let latency = try c.decode(Double.self, forKey: .latency), bandwidth = try c.decode(Double.self, forKey: .bandwidth)
        let overhead = try c.decodeIfPresent(Double.self, forKey: .allreduceOverhead) ?? 0
        let queue = try c.decodeIfPresent(Double.self, forKey: .queueDelay) ?? 0
        guard latency >= 0, bandwidth > 0, overhead >= 0, queue >= 0, [latency, bandwidth, overhead, queue].allSatisfy(\.isFinite) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "a network needs latency ≥ 0, bandwidth > 0, allreduceOverhead ≥ 0 and queueDelay ≥ 0 (finite), got \(latency), \(bandwidth), \(overhead), \(queue)"))
        }
        self.init(name: try c.decode(String.self, forKey: .name), latency: latency, bandwidth: bandwidth,
                  allreduceOverhead: overhead, queueDelay: queue)
    }

    public static let infiniband = NetworkModel(name: "infiniband", latency: 2e-6, bandwidth: 12e9)
    public static let tenGigabitEthernet = NetworkModel(name: "10gbe", latency: 30e-6, bandwidth: 1.1e9)
    public static let gigabitEthernet = NetworkModel(name: "1gbe", latency: 50e-6, bandwidth: 0.118e9)

    /// The presets by their command-line names.
    public static let presets: [String: NetworkModel] = ["infiniband": .infiniband, "10gbe": .tenGigabitEthernet,
                                                         "1gbe": .gigabitEthernet]

    /// A network fitted to measurements on `ranks` ranks (R ≥ 2) of the links themselves:
    ///
    /// - `ring`: (bytes, seconds) of whole ring all-reduces of at least two different sizes. A
    ///   least-squares line through the times less their messages' α (as `ringAllreduce` counts
    ///   them), t′ = c + k · bytes, gives β = 2(R − 1)/R / k and the overhead c (never below 0);
    /// - `idleSmall`: seconds of a small all-reduce on idle links: α = t / ⌈log₂ R⌉;
    /// - `loadedSmall`: seconds of the same all-reduce while a ring all-reduce runs on the links:
    ///   the queue delay is its excess over `idleSmall` (0 if none).
    ///
    /// nil when the sizes do not differ or the line does not rise (β would not be positive).
    public static func fitted(name: String, ranks: Int, ring: [(bytes: Double, seconds: Double)],
                              idleSmall: Double, loadedSmall: Double) -> NetworkModel? {
        guard ranks >= 2, ring.count >= 2, idleSmall >= 0, loadedSmall >= 0,
              ring.allSatisfy({ $0.bytes > 0 && $0.seconds > 0 && $0.seconds.isFinite }) else { return nil }
        let r = Double(ranks)
        let latency = idleSmall / CollectiveCost.ceilLog2(ranks)
        // What remains of each time once its messages' α (as `ringAllreduce` counts them) is taken out.
        let points = ring.map { p in
            (x: p.bytes, y: p.seconds - 2 * (r - 1) * max(1, (p.bytes / (r * Double(CollectiveCost.ringChunkBytes))).rounded(.up)) * latency)
        }
        let n = Double(points.count)
        let mx = points.reduce(0) { $0 + $1.x } / n, my = points.reduce(0) { $0 + $1.y } / n
        let sxx = points.reduce(0) { $0 + ($1.x - mx) * ($1.x - mx) }
        let sxy = points.reduce(0) { $0 + ($1.x - mx) * ($1.y - my) }
        guard sxx > 0, sxy > 0 else { return nil }
        let slope = sxy / sxx, intercept = my - slope * mx
        return NetworkModel(name: name, latency: latency, bandwidth: 2 * (r - 1) / r / slope,
                            allreduceOverhead: max(0, intercept),
                            queueDelay: max(0, loadedSmall - idleSmall))
    }
}

/// Costs of the collectives dsan uses, in seconds, on R ranks.
public enum CollectiveCost {
    /// Bytes per ring message: `RingAllreduce.chunk` (2¹⁸ floats = 1 MiB).
    public static let ringChunkBytes = 1 << 20

    /// The ring all-reduce of `bytes` (Sources/Distributed/RingAllreduce.swift): 2(R − 1) steps
    /// (R − 1 reduce-scatter, R − 1 all-gather); in each a rank sends one segment of bytes/R to
    /// its right neighbour, as ⌈(bytes/R) / 1 MiB⌉ messages, while receiving one from its left:
    ///
    ///     t = overhead + 2(R − 1) · ⌈bytes / (R · chunk)⌉ · α  +  2(R − 1)/R · bytes / β
    ///
    /// Every message pays α (a rendezvous handshake for large messages); the additions of the
    /// reduce-scatter overlap with the transfers (each chunk is added as it arrives) and are not
    /// counted. 0 for one rank.
    public static func ringAllreduce(bytes: Double, ranks: Int, network: NetworkModel,
                                     chunkBytes: Int = ringChunkBytes) -> Double {
        precondition(ranks >= 1 && bytes >= 0 && chunkBytes > 0, "ringAllreduce: \(bytes) B on \(ranks) ranks")
        guard ranks > 1, bytes > 0 else { return 0 }
        let r = Double(ranks)
        let messages = (bytes / (r * Double(chunkBytes))).rounded(.up)
        return network.allreduceOverhead + 2 * (r - 1) * max(1, messages) * network.latency
            + 2 * (r - 1) / r * bytes / network.bandwidth
    }

    /// A small `MPI_Iallreduce` (batch-norm sums, loss terms): recursive doubling, as MPI
    /// libraries do below a few KB — ⌈log₂ R⌉ rounds, each one message of `bytes` each way:
    ///
    ///     t = ⌈log₂ R⌉ · (α + bytes / β)
    ///
    /// 0 for one rank.
    public static func smallAllreduce(bytes: Double, ranks: Int, network: NetworkModel) -> Double {
        precondition(ranks >= 1 && bytes >= 0, "smallAllreduce: \(bytes) B on \(ranks) ranks")
        guard ranks > 1 else { return 0 }
        return ceilLog2(ranks) * (network.latency + bytes / network.bandwidth)
    }

    /// ⌈log₂ n⌉ for n ≥ 1.
    static func ceilLog2(_ n: Int) -> Double {
        Double(Int.bitWidth - (n - 1).leadingZeroBitCount)
    }
}
