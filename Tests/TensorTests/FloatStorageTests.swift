import Foundation
import Testing
@testable import Tensor

/// Serialised: the tests switch the process-wide `FloatStorage.marksHugePages`.
@Suite(.serialized) struct FloatStorageTests {
    /// Large allocations are 2 MiB aligned (so that their pages can be huge ones), small ones and
    /// unmarked ones 64-byte aligned; all are usable end to end.
    @Test func largeAllocationsAreHugePageAligned() {
        let saved = FloatStorage.marksHugePages
        defer { FloatStorage.marksHugePages = saved }
        for marks in [true, false] {
            FloatStorage.marksHugePages = marks
            for count in [1, 1000, FloatStorage.hugePageThreshold / 4 - 1, FloatStorage.hugePageThreshold / 4, 3 << 20] {
                let p = FloatStorage.allocate(count)
                defer { FloatStorage.free(p) }
                let address = UInt(bitPattern: p)
                let large = marks && count * 4 >= FloatStorage.hugePageThreshold
                #expect(address % UInt(large ? FloatStorage.hugePage : 64) == 0, "\(count) floats, marking \(marks)")
                p.initialize(repeating: 1, count: count)
                #expect(p[count - 1] == 1)
            }
        }
    }

    /// The report line names the kernel's mode and whether dsan asks, for every mode the file shows.
    @Test func pageReportNamesTheModeAndDsansPart() {
        #expect(FloatStorage.pageReport(setting: "always [madvise] never\n", marks: true)
                == "memory pages: transparent huge pages on request (madvise); dsan asks for them on allocations of 4 MiB and more")
        #expect(FloatStorage.pageReport(setting: "always [madvise] never", marks: false)
                == "memory pages: transparent huge pages on request (madvise); dsan does not ask for them (DSAN_HUGE_PAGES=0)")
        #expect(FloatStorage.pageReport(setting: "[always] madvise never", marks: true)
                == "memory pages: transparent huge pages always (the kernel's setting)")
        #expect(FloatStorage.pageReport(setting: "always madvise [never]", marks: true)
                == "memory pages: 4 KiB only (transparent huge pages never)")
        #expect(FloatStorage.pageReport(setting: nil, marks: true).hasPrefix("memory pages: transparent huge pages unknown"))
        #expect(FloatStorage.pageReport(setting: "garbled", marks: true).hasPrefix("memory pages: transparent huge pages unknown"))
    }

    /// Where the kernel gives huge pages on request (`madvise` or `always`), a large tensor's
    /// mapping is eligible for them; where it never does, the tensor still works.
    @Test func largeTensorsAskForHugePages() throws {
        let saved = FloatStorage.marksHugePages
        defer { FloatStorage.marksHugePages = saved }
        FloatStorage.marksHugePages = true
        let t = Tensor(zeros: [4 << 20])   // 16 MiB, touched by its zero fill
        #expect(t.data[t.count - 1] == 0)
        guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
              !mode.contains("[never]"),
              let smaps = try? String(contentsOfFile: "/proc/self/smaps", encoding: .utf8) else { return }
        // The mapping holding the tensor: its header line "start-end perms …", then its fields.
        let address = UInt(bitPattern: t.data)
        var inside = false, eligible: String?
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let lo = UInt(line[..<dash], radix: 16), let hi = UInt(line[line.index(after: dash)..<space], radix: 16) {
                inside = lo <= address && address < hi
            } else if inside && line.hasPrefix("THPeligible:") {
                eligible = line.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) }
            }
        }
        if let eligible { #expect(eligible == "1", "THPeligible \(eligible) for a 16 MiB tensor under \(mode)") }
    }
}

/// `Tensor.zeroReleasingPages`: every element reads zero afterwards, the whole pages inside the
/// allocation are no longer resident (`mincore`), the tensor takes writes again, and an
/// allocation smaller than a page is simply zeroed.
@Suite struct ReleasingPagesTests {
    /// Resident pages among the whole pages inside `t`'s allocation, and how many there are.
    private func residentPages(_ t: Tensor) -> (resident: Int, pages: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: UnsafeMutableRawPointer(t.data)), end = start + t.capacity * 4
        let first = (start + page - 1) / page * page, last = end / page * page
        guard last > first else { return (0, 0) }
        var flags = [UInt8](repeating: 0, count: (last - first) / page)
        let status = flags.withUnsafeMutableBufferPointer { mincore(UnsafeMutableRawPointer(bitPattern: first), last - first, $0.baseAddress) }
        #expect(status == 0, "mincore: \(String(cString: strerror(errno)))")
        return (flags.filter { $0 & 1 != 0 }.count, flags.count)
    }

    @Test func releasedTensorsReadZeroAndHoldNoPages() {
        for count in [(6 << 20) / 4 + 3, 100_003, 7] {
            let t = Tensor(shape: [count], repeating: 1.5)
            let before = residentPages(t)
            #expect(before.resident == before.pages, "\(count): \(before)")
            t.zeroLazily()
            t.zeroReleasingPages()
            #expect(!t.isLazilyZero)
            let after = residentPages(t)   // before any read: a read maps the kernel's zero page
            #expect(after.resident == 0, "\(count): \(after) still resident")
            #expect(t.array.allSatisfy { $0 == 0 && $0.sign == .plus }, "\(count)")
            t.fill(2)
            #expect(t.array.allSatisfy { $0 == 2 } && residentPages(t).resident == after.pages, "\(count)")
        }
    }
}
