#if canImport(Glibc)
import Glibc
#endif

/// Zeroing a parameter gradient without writing it.
///
/// A training step starts with every parameter gradient at zero, and the backward pass adds into
/// them. Writing 63.5 M zeros is a pass over 254 MB, and the kernel that then adds into a gradient
/// reads those zeros back: two memory passes for nothing, on a part of the step that gains least
/// from a second core. So `zeroLazily()` only marks a tensor: its elements count as zero from then
/// on. A kernel about to add into it calls `takeLazyZero()`, and when that says true it writes its
/// result instead of adding (OpenBLAS's beta 0, the Winograd weight gradient's `overwrite`), never
/// reading the old contents; the mark is gone. A kernel that cannot write instead of adding calls
/// `resolveLazyZero()` first, which writes the zeros the mark stands for. Whoever reads the values
/// (the all-reduce, Adam, a gradient dump) must find no mark left: `ResNet3D.backward` resolves
/// every gradient its pass did not write.
///
/// Writing x instead of adding x to +0 gives the same value, except that −0 stays −0 (0 + −0 is
/// +0); no later operation tells the two apart (Adam adds weight decay to the gradient first).
///
/// A kernel that adds into a marked tensor without taking the mark would add to whatever the
/// tensor held before: last step's gradient. `DSAN_POISON_LAZY_ZEROS=1` (set by the test command)
/// fills a marked tensor with NaN, so that such a kernel poisons the result and the tests fail.
extension Tensor {
    /// Whether callers that zero a whole set of tensors per step (`ResNet3D.zeroGradients`) leave
    /// them marked (the default) or write the zeros at once: `DSAN_LAZY_ZEROS=0`, for comparisons.
    nonisolated(unsafe) public static var zerosLazily: Bool = {
        guard let raw = getenv("DSAN_LAZY_ZEROS") else { return true }
        return String(cString: raw) != "0"
    }()

    /// Whether `zeroLazily` fills the tensor with NaN (from `DSAN_POISON_LAZY_ZEROS=1`; tests may set it).
    nonisolated(unsafe) public static var poisonsLazyZeros: Bool = {
        guard let raw = getenv("DSAN_POISON_LAZY_ZEROS") else { return false }
        return String(cString: raw) == "1"
    }()

    /// Marks the elements as zero without writing them (see above).
    public func zeroLazily() {
        isLazilyZero = true
        if Tensor.poisonsLazyZeros { fill(.nan) }
    }

    /// For a kernel about to add into this tensor: true when the elements count as zero, so that
    /// the kernel must write its result instead of adding it (without reading the tensor). Clears
    /// the mark either way, so the kernel must then write every element.
    public func takeLazyZero() -> Bool {
        defer { isLazilyZero = false }
        return isLazilyZero
    }

    /// Writes the zeros a mark stands for (in parallel for large tensors) and clears it; nothing
    /// when the tensor is not marked.
    public func resolveLazyZero(file: StaticString = #fileID, line: UInt = #line) {
        guard isLazilyZero else { return }
        isLazilyZero = false
        if count >= 1 << 16 { Parallel.zero([self], file: file, line: line) } else { zero() }
    }
}
