#if canImport(Glibc)
import Glibc
#endif

/// A contiguous float32 tensor, row-major; activations are `[N, C, D, H, W]`.
///
/// `Tensor` is a class: it owns one aligned allocation for its whole life, so kernels can take raw
/// pointers without copy-on-write or retain/release in their inner loops, and a model can keep and
/// reuse its buffers across steps. Copies are explicit (`copy()`). Shape mismatches between two of
/// dsan's own tensors are programming errors and trap with a precondition.
public final class Tensor {
    /// Dimensions, outermost first.
    public private(set) var shape: [Int]
    /// Number of elements, the product of `shape`.
    public private(set) var count: Int
    /// Capacity in elements of the allocation (≥ `count`); `reshape` may use less than this.
    public let capacity: Int
    /// The storage. Valid for the tensor's lifetime.
    public let data: UnsafeMutablePointer<Float>
    /// The elements count as zero whatever `data` holds (`zeroLazily`, Sources/Tensor/LazyZero.swift).
    public internal(set) var isLazilyZero = false

    /// A zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.capacity = max(count, 1)
        self.data = FloatStorage.allocate(capacity)
        data.initialize(repeating: 0, count: capacity)
    }

    /// A tensor of the given shape holding `values` (row-major).
    public convenience init(shape: [Int], values: [Float]) {
        self.init(zeros: shape)
        precondition(values.count == count, "Tensor: \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A tensor filled with `value`.
    public convenience init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        fill(value)
    }

    deinit { FloatStorage.free(data) }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    /// The elements copied into an array (for tests and small outputs, not hot paths).
    public var array: [Float] { Array(buffer) }

    /// Element at a multi-index (bounds-checked; for tests and references).
    public subscript(_ index: Int...) -> Float {
        get { data[offset(index)] }
        set { data[offset(index)] = newValue }
    }

    /// Row-major offset of a multi-index, bounds-checked.
    public func offset(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "Tensor: index \(index) for shape \(shape)")
        var o = 0
        for (i, (x, n)) in zip(index, shape).enumerated() {
            precondition(x >= 0 && x < n, "Tensor: index \(index) out of bounds in dim \(i) of \(shape)")
            o = o * n + x
        }
        return o
    }

    /// Changes the shape in place without moving data; the new element count must fit `capacity`.
    /// Lets a model reuse one allocation for activations of different shapes.
    public func reshape(_ newShape: [Int]) {
        let n = newShape.reduce(1, *)
        precondition(n <= capacity, "Tensor.reshape: \(newShape) needs \(n) elements, capacity \(capacity)")
        shape = newShape
        count = n
    }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Sets every element to zero.
    public func zero() { fill(0) }

    /// Sets every element of the allocation to zero and gives its whole memory pages back to the
    /// kernel (`madvise(MADV_DONTNEED)` on the anonymous pages `FloatStorage` allocates): they read
    /// as zeros and take no resident memory until written again. For buffers a process keeps but
    /// may never use (a model's gradients when it only infers); the bytes at the ends that share a
    /// page with other memory are written instead. When the kernel refuses, writes the zeros.
    public func zeroReleasingPages() {
        isLazilyZero = false
        let page = max(1, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = Int(bitPattern: UnsafeMutableRawPointer(data)), end = start + capacity * MemoryLayout<Float>.stride
        let first = (start + page - 1) / page * page, last = end / page * page
        guard last > first else { data.update(repeating: 0, count: capacity); return }
        UnsafeMutableRawPointer(bitPattern: start)!.initializeMemory(as: UInt8.self, repeating: 0, count: first - start)
        UnsafeMutableRawPointer(bitPattern: last)!.initializeMemory(as: UInt8.self, repeating: 0, count: end - last)
        if madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, Int32(MADV_DONTNEED)) != 0 {
            UnsafeMutableRawPointer(bitPattern: first)!.initializeMemory(as: UInt8.self, repeating: 0, count: last - first)
        }
    }

    /// A new tensor with the same shape and contents.
    public func copy() -> Tensor {
        let t = Tensor(zeros: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Copies `other`'s elements into this tensor (shapes must have equal element counts).
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "Tensor.assign: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Sum of all elements in double precision.
    public func sum() -> Double {
        var s: Double = 0
        for i in 0..<count { s += Double(data[i]) }
        return s
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}

/// The five dimensions of an `[N, C, D, H, W]` activation.
public struct Shape5: Equatable, Sendable, CustomStringConvertible {
    public var n, c, d, h, w: Int
    public init(n: Int, c: Int, d: Int, h: Int, w: Int) {
        self.n = n; self.c = c; self.d = d; self.h = h; self.w = w
    }
    public init(_ dims: [Int]) {
        precondition(dims.count == 5, "Shape5: expected [N, C, D, H, W], got \(dims)")
        self.init(n: dims[0], c: dims[1], d: dims[2], h: dims[3], w: dims[4])
    }
    /// Voxels per channel: D·H·W.
    public var spatial: Int { d * h * w }
    /// Elements per sample: C·D·H·W.
    public var perSample: Int { c * spatial }
    public var count: Int { n * perSample }
    public var dims: [Int] { [n, c, d, h, w] }
    public var description: String { "[\(n), \(c), \(d), \(h), \(w)]" }
}

extension Tensor {
    /// The shape as `[N, C, D, H, W]`; traps unless the tensor is 5-D.
    public var shape5: Shape5 { Shape5(shape) }
}
