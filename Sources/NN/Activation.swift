// Elementwise layers of the 3D ResNet and the attention module: ReLU, the residual join
// (add, and the fused add-then-ReLU that ends every BasicBlock) and sigmoid.
//
// All of them work on any shape (the comments say `[*]`), run in parallel over fixed chunks of the
// flat index range (so results never depend on `Parallel.threads`), allocate nothing, and allow
// the output to be the same tensor as an input (in place), because every element is read before
// it is written and no element depends on another. ReLU, Add and AddReLU run the VectorKernels
// build for this CPU's vector width (same bits as the scalar formula on every ISA level).
import VectorKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Elements per parallel chunk below which a loop stays on one thread.
@usableFromInline let elementwiseGrain = 1 << 15

/// ReLU, y = max(x, 0), with PyTorch's gradient convention: dx = dy where y > 0, else 0 (so the
/// gradient at exactly x = 0 is 0). The backward reads the forward *output*, so the input need not
/// be kept; in-place use (`y === x`, `dx === dy`) is allowed.
public enum ReLU {
    /// y = max(x, 0). Shapes: x `[*]`, y `[*]` with the same count. `y` may be `x`.
    public static func forward(_ x: Tensor, into y: Tensor) {
        VectorLevel.configure()
        precondition(x.count == y.count, "ReLU.forward: \(x) into \(y)")
        let xp = x.data, yp = y.data
        Parallel.forEach(x.count, grain: elementwiseGrain) { r in
            dsan_vk_relu_forward(xp + r.lowerBound, yp + r.lowerBound, r.count)
        }
    }

    /// WRITES dx = dy · [y > 0]. Shapes: dy, y, dx `[*]`, equal counts. `dx` may be `dy`.
    public static func backward(_ dy: Tensor, output y: Tensor, into dx: Tensor) {
        VectorLevel.configure()
        precondition(dy.count == y.count && dy.count == dx.count, "ReLU.backward: \(dy), \(y), \(dx)")
        let gp = dy.data, yp = y.data, dp = dx.data
        Parallel.forEach(dy.count, grain: elementwiseGrain) { r in
            dsan_vk_relu_backward(gp + r.lowerBound, yp + r.lowerBound, dp + r.lowerBound, r.count)
        }
    }
}

/// The residual join y = a + b (no activation), for any equal shapes.
public enum Add {
    /// y = a + b. Shapes: a, b, y `[*]`, equal counts. `y` may be `a` or `b`.
    public static func forward(_ a: Tensor, _ b: Tensor, into y: Tensor) {
        VectorLevel.configure()
        precondition(a.count == b.count && a.count == y.count, "Add.forward: \(a) + \(b) into \(y)")
        let ap = a.data, bp = b.data, yp = y.data
        Parallel.forEach(a.count, grain: elementwiseGrain) { r in
            dsan_vk_add(ap + r.lowerBound, bp + r.lowerBound, yp + r.lowerBound, r.count)
        }
    }

    /// WRITES da = dy and db = dy (either may be `dy` itself, in which case nothing is copied for it).
    public static func backward(_ dy: Tensor, intoA da: Tensor, intoB db: Tensor) {
        precondition(dy.count == da.count && dy.count == db.count, "Add.backward: \(dy) into \(da), \(db)")
        if da !== dy { da.assign(dy) }
        if db !== dy { db.assign(dy) }
    }
}

/// The end of a BasicBlock, y = ReLU(a + b) with a the block's main path (after its second BN) and
/// b the shortcut, in one pass. Backward: da = db = dy · [y > 0] (gradient 0 where a + b = 0).
public enum AddReLU {
    /// y = max(a + b, 0). Shapes: a, b, y `[*]`, equal counts. `y` may be `a` or `b`.
    public static func forward(_ a: Tensor, _ b: Tensor, into y: Tensor) {
        VectorLevel.configure()
        precondition(a.count == b.count && a.count == y.count, "AddReLU.forward: \(a) + \(b) into \(y)")
        let ap = a.data, bp = b.data, yp = y.data
        Parallel.forEach(a.count, grain: elementwiseGrain) { r in
            dsan_vk_add_relu(ap + r.lowerBound, bp + r.lowerBound, yp + r.lowerBound, r.count)
        }
    }

    /// WRITES dSum = dy · [y > 0], the gradient for both addends (the caller passes the same buffer
    /// to the main path and the shortcut, or copies it). `dSum` may be `dy`.
    public static func backward(_ dy: Tensor, output y: Tensor, into dSum: Tensor) {
        ReLU.backward(dy, output: y, into: dSum)
    }
}

/// The logistic function σ(x) = 1 / (1 + e^(−x)), elementwise.
public enum Sigmoid {
    /// σ for one value, without overflow warnings: e^(−x) → ∞ gives exactly 0.
    @inlinable
    public static func value(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

    /// y = σ(x). Shapes: x, y `[*]`, equal counts. `y` may be `x`.
    public static func forward(_ x: Tensor, into y: Tensor) {
        precondition(x.count == y.count, "Sigmoid.forward: \(x) into \(y)")
        let xp = x.data, yp = y.data
        Parallel.forEach(x.count, grain: elementwiseGrain) { r in
            for i in r { yp[i] = value(xp[i]) }
        }
    }

    /// WRITES dx = dy · y (1 − y), from the forward output y. `dx` may be `dy`.
    public static func backward(_ dy: Tensor, output y: Tensor, into dx: Tensor) {
        precondition(dy.count == y.count && dy.count == dx.count, "Sigmoid.backward: \(dy), \(y), \(dx)")
        let gp = dy.data, yp = y.data, dp = dx.data
        Parallel.forEach(dy.count, grain: elementwiseGrain) { r in
            for i in r { dp[i] = gp[i] * yp[i] * (1 - yp[i]) }
        }
    }
}
