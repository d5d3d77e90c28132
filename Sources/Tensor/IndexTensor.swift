/// A contiguous `Int32` tensor, row-major, for indices a forward pass records for its backward
/// (max-pool argmax positions). Like `Tensor` it is a class owning one allocation, so a model
/// allocates it once and kernels take its raw pointer without copy-on-write in their loops.
public final class IndexTensor {
    /// Dimensions, outermost first.
    public private(set) var shape: [Int]
    /// Number of elements, the product of `shape`.
    public private(set) var count: Int
    /// Capacity in elements of the allocation (≥ `count`).
    public let capacity: Int
    /// The storage. Valid for the tensor's lifetime.
    public let data: UnsafeMutablePointer<Int32>

    /// A zero-filled index tensor of the given shape.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "IndexTensor: negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.capacity = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Int32>.stride,
                                                   alignment: 64)
        self.data = raw.bindMemory(to: Int32.self, capacity: capacity)
        data.initialize(repeating: 0, count: capacity)
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }

    /// Changes the shape in place without moving data; the new element count must fit `capacity`.
    public func reshape(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        precondition(n <= capacity, "IndexTensor.reshape: \(newShape) needs \(n) elements, capacity \(capacity)")
        shape = newShape
        count = n
    }

    /// The elements copied into an array (for tests).
    public var array: [Int32] { Array(UnsafeBufferPointer(start: data, count: count)) }
}
