/// A 64-byte aligned float buffer for the C kernels' tests: the kernels load and store whole
/// vectors (the packed weight transform streams them past the caches), and the Swift reference
/// transforms keep SIMD8 temporaries in their scratch.
public final class AlignedFloats {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// `count` floats (at least one), each `value`.
    public init(_ count: Int, _ value: Float = 0) {
        self.count = max(count, 1)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: self.count * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: self.count)
        pointer.initialize(repeating: value, count: self.count)
    }
    /// A copy of `v`.
    public convenience init(_ v: [Float]) {
        self.init(v.count)
        for i in 0..<v.count { pointer[i] = v[i] }
    }
    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}
