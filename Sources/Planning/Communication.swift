// The α-β cost model of the collectives a training step makes (Docs/scaling.md).

/// A network described by two numbers (Hockney's α-β model): a message of m bytes between two
/// ranks takes α + m / β.
///
/// β is the *effective* rate one rank sends at while it also receives (a ring step does both),
/// not the link's nominal rate. The presets are typical, not measured here: InfiniBand HDR
/// (200 Gb/s nominal; ~12 GB/s achieved by MPI point-to-point at large messages, ~2 µs latency),
/// 10 GbE over TCP (~1.1 GB/s, ~30 µs) and 1 GbE over TCP (1 Gbit/s × 1448/1538, the TCP payload
/// of a full 1500-byte frame with its Ethernet overhead: 0.118 GB/s; ~50 µs).
public struct NetworkModel: Codable, Equatable, Sendable {
    public var name: String
    /// α, seconds per message.
    public var latency: Double
    /// β, bytes per second.
    public var bandwidth: Double

    public init(name: String, latency: Double, bandwidth: Double) {
        precondition(latency >= 0 && bandwidth > 0, "NetworkModel: α \(latency), β \(bandwidth)")
        self.name = name
        self.latency = latency
        self.bandwidth = bandwidth
    }

    public static let infiniband = NetworkModel(name: "infiniband", latency: 2e-6, bandwidth: 12e9)
    public static let tenGigabitEthernet = NetworkModel(name: "10gbe", latency: 30e-6, bandwidth: 1.1e9)
    public static let gigabitEthernet = NetworkModel(name: "1gbe", latency: 50e-6, bandwidth: 0.118e9)

    /// The presets by their command-line names.
    public static let presets: [String: NetworkModel] = ["infiniband": .infiniband, "10gbe": .tenGigabitEthernet,
                                                         "1gbe": .gigabitEthernet]
}

/// Costs of the collectives dsan uses, in seconds, on R ranks.
public enum CollectiveCost {
    /// Bytes per ring message: `RingAllreduce.chunk` (2¹⁸ floats = 1 MiB).
    public static let ringChunkBytes = 1 << 20

    /// The ring all-reduce of `bytes` (Sources/Distributed/RingAllreduce.swift): 2(R − 1) steps
    /// (R − 1 reduce-scatter, R − 1 all-gather); in each a rank sends one segment of bytes/R to
    /// its right neighbour, as ⌈(bytes/R) / 1 MiB⌉ messages, while receiving one from its left:
    ///
    ///     t = 2(R − 1) · ⌈bytes / (R · chunk)⌉ · α  +  2(R − 1)/R · bytes / β
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
        return 2 * (r - 1) * max(1, messages) * network.latency + 2 * (r - 1) / r * bytes / network.bandwidth
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
