import CHDF5
import Foundation

/// A failed HDF5 operation: the file, the object inside it, what dsan was doing and HDF5's own
/// message from its error stack, e.g.
/// "train-003.h5: dataset `lung`: H5Dopen2 failed: unable to open dataset: object 'lung' doesn't exist".
public struct HDF5Error: Error, CustomStringConvertible, Sendable {
    /// Path of the file.
    public var file: String
    /// Path of the object inside the file (dataset, group or attribute), if any.
    public var object: String?
    /// The operation, usually the C function's name.
    public var operation: String
    /// HDF5's error-stack text, or dsan's own explanation for checks made here.
    public var message: String

    public init(file: String, object: String?, operation: String, message: String) {
        self.file = file
        self.object = object
        self.operation = operation
        self.message = message
    }

    public var description: String {
        var s = file
        if let object { s += ": \(object)" }
        return s + ": \(operation) failed: \(message)"
    }
}

/// Process-wide HDF5 state: silences HDF5's own printing to stderr (errors are thrown instead)
/// and serialises calls, so the wrapper is safe from a prefetch thread even with an HDF5 built
/// without thread safety.
enum Library {
    private static let lock = NSRecursiveLock()
    /// `H5dont_atexit` first: HDF5's exit handler closes whatever is still open, and after a write
    /// failed (a full disk) the file it then closes again crashes it (SIGSEGV in `H5G_close` from
    /// `H5_term_library`, HDF5 1.10). Every handle dsan opens is closed by its owner, so the
    /// handler has nothing to do that the program needs.
    private static let setUp: Void = {
        _ = H5dont_atexit()
        _ = H5open()
    }()

    /// Runs `body` holding the library lock. HDF5's automatic error printing is switched off
    /// on every call because a thread-safe HDF5 keeps that setting per thread.
    static func sync<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        _ = setUp
        _ = H5Eset_auto2(dsan_h5e_default(), nil, nil)
        return try body()
    }

    /// Text of the current thread's HDF5 error stack (outermost first, duplicates removed),
    /// then clears it.
    static func errorStackText() -> String {
        final class Box { var lines: [String] = [] }
        let box = Box()
        let walker: H5E_walk2_t = { _, entry, client in
            guard let entry, let client else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(client).takeUnretainedValue()
            var text = entry.pointee.desc.map { String(cString: $0) } ?? ""
            var minor = [CChar](repeating: 0, count: 256)
            if H5Eget_msg(entry.pointee.min_num, nil, &minor, 256) > 0 {
                let m = String(cString: minor)
                if !m.isEmpty && !text.contains(m) { text += text.isEmpty ? m : " (\(m))" }
            }
            if !text.isEmpty && !box.lines.contains(text) { box.lines.append(text) }
            return 0
        }
        let stack = dsan_h5e_default()
        _ = H5Ewalk2(stack, H5E_WALK_DOWNWARD, walker, Unmanaged.passUnretained(box).toOpaque())
        _ = H5Eclear2(stack)
        return box.lines.isEmpty ? "unknown HDF5 error" : box.lines.joined(separator: ": ")
    }
}

/// Calls an HDF5 function returning an id or a status, throwing `HDF5Error` with the error
/// stack's text when the result is negative.
@discardableResult
func h5call<T: BinaryInteger>(_ file: String, _ object: String?, _ operation: String,
                              _ body: () -> T) throws -> T {
    try Library.sync {
        let result = body()
        if result < 0 {
            throw HDF5Error(file: file, object: object, operation: operation, message: Library.errorStackText())
        }
        return result
    }
}

/// An HDF5 identifier that closes itself. `close` is the matching H5?close function.
final class Handle {
    let id: hid_t
    private let close: (hid_t) -> herr_t

    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.close = close
    }

    deinit { Library.sync { _ = close(id) } }
}
