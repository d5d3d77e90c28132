/// A volume size `DxHxW` (depth × height × width, voxels), e.g. `138x256x256`: the size the
/// command line's `--size` takes, which cases are prepared at and the network is run on.
public struct VolumeSize: Sendable, Equatable, CustomStringConvertible {
    public var d, h, w: Int

    /// The smallest dimension the model accepts (DESIGN.md §1: every size ≥ 16 must work), from
    /// its strides: `ModelConfig.minimumInputEdge`.
    public static let minimum = ModelConfig.minimumInputEdge
    /// The largest dimension accepted, far beyond any CT volume (a typo guard).
    public static let maximum = 4096

    /// Parses `DxHxW` (or `DXHXW`); nil unless there are three whole numbers, each in
    /// `minimum...maximum`.
    public init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x").map { Int($0) }
        guard parts.count == 3, let d = parts[0], let h = parts[1], let w = parts[2],
              [d, h, w].allSatisfy({ $0 >= Self.minimum && $0 <= Self.maximum }) else { return nil }
        self.d = d; self.h = h; self.w = w
    }

    public init(_ d: Int, _ h: Int, _ w: Int) { self.d = d; self.h = h; self.w = w }

    /// `[d, h, w]`.
    public var dims: [Int] { [d, h, w] }
    /// `DxHxW`, the form `init(argument:)` reads.
    public var description: String { "\(d)x\(h)x\(w)" }
}
