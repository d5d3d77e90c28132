#if canImport(Glibc)
import Glibc
#endif

/// The allocations behind `Tensor` and the kernels' scratch buffers: 64-byte aligned, and for
/// large ones (at least `hugePageThreshold` bytes) aligned to 2 MiB with their whole 2 MiB pages
/// marked for transparent huge pages (`madvise(MADV_HUGEPAGE)`).
///
/// Why: a step walks hundreds of megabytes of weights, gradients, moments and activations, much of
/// it in strided rows (the weight transforms read rows 27·Cin floats apart), and with 4 KiB pages
/// every few rows is a TLB miss whose page walk adds to the memory traffic both cores share. Many
/// systems (Debian's and Ubuntu's kernels among them) give huge pages only to memory that asks
/// (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`). Only whole 2 MiB pages inside the
/// allocation are marked, so the resident memory does not grow: the tail keeps 4 KiB pages.
/// `DSAN_HUGE_PAGES=0` turns the marking off (for comparisons, or a node where khugepaged's
/// compaction is unwelcome).
public enum FloatStorage {
    /// 2 MiB, the x86-64 huge page.
    public static let hugePage = 2 << 20
    /// Allocations from this size on are huge-page aligned and marked.
    public static let hugePageThreshold = 4 << 20
    /// Whether large allocations are marked (read once from `DSAN_HUGE_PAGES`; tests may set it).
    nonisolated(unsafe) public static var marksHugePages: Bool = {
        guard let raw = getenv("DSAN_HUGE_PAGES") else { return true }
        return String(cString: raw) != "0"
    }()

    /// Uninitialised storage for `count` floats (at least one). Release it with `free`.
    public static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let large = marksHugePages && bytes >= hugePageThreshold
        var pointer: UnsafeMutableRawPointer?
        let status = posix_memalign(&pointer, large ? hugePage : 64, bytes)
        guard status == 0, let pointer else {
            fatalError("dsan: cannot allocate \(bytes) bytes (posix_memalign: \(String(cString: strerror(status)))); "
                       + "the model and batch need more memory than this node gives the process")
        }
        if large {
            // Advice only: a kernel built without transparent huge pages answers EINVAL and the
            // memory works the same with 4 KiB pages, so a failure changes speed, not results.
            _ = madvise(pointer, bytes / hugePage * hugePage, Int32(MADV_HUGEPAGE))
        }
        return pointer.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// One line for logs and benchmark reports: the kernel's transparent-huge-page mode and
    /// whether dsan marks its large allocations, which moves a step's speed by about a tenth
    /// (Docs/performance.md, "Huge pages").
    public static var pageReport: String {
        pageReport(setting: try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
                   marks: marksHugePages)
    }

    /// `pageReport` for the contents of `/sys/kernel/mm/transparent_hugepage/enabled` ("always
    /// [madvise] never": the bracketed word is the mode; nil: no such file).
    public static func pageReport(setting: String?, marks: Bool) -> String {
        let ours = marks ? "dsan asks for them on allocations of \(hugePageThreshold >> 20) MiB and more"
                         : "dsan does not ask for them (DSAN_HUGE_PAGES=0)"
        guard let setting, let open = setting.firstIndex(of: "["), let close = setting.firstIndex(of: "]"), open < close else {
            return "memory pages: transparent huge pages unknown (no /sys/kernel/mm/transparent_hugepage/enabled); " + ours
        }
        let mode = String(setting[setting.index(after: open)..<close])
        switch mode {
        case "always": return "memory pages: transparent huge pages always (the kernel's setting)"
        case "madvise": return "memory pages: transparent huge pages on request (madvise); " + ours
        case "never": return "memory pages: 4 KiB only (transparent huge pages never)"
        default: return "memory pages: transparent huge pages \(mode); " + ours
        }
    }

    /// Releases storage from `allocate`.
    public static func free(_ pointer: UnsafeMutablePointer<Float>) {
        Glibc.free(UnsafeMutableRawPointer(pointer))
    }
}
