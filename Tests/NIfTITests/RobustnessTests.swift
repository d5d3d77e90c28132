import Testing
@testable import NIfTI

/// The reader must throw, never trap, on whatever bytes it is given.
@Suite struct RobustnessTests {
    func validFile() -> [UInt8] {
        var h = HandBuiltNIfTI()
        h.dim = [3, 6, 5, 4, 1, 1, 1, 1]
        h.sformCode = 1
        h.srow = [[-1, 0, 0, 10], [0, -1, 0, 10], [0, 0, 2, 0]]
        h.sclSlope = 1
        h.setData((0..<120).map { Int16($0 * 7 - 300) })
        return h.bytes()
    }

    @Test func everyPrefixOfAValidFileThrows() throws {
        let scratch = ScratchDir()
        let plain = validFile()
        let gz = gzip(plain, scratch: scratch)
        #expect(try NIfTI.read(bytes: plain).count == 120)
        #expect(try NIfTI.read(bytes: gz).count == 120)
        for n in 0..<plain.count {
            #expect(nifti { try NIfTI.read(bytes: Array(plain[0..<n])) } != nil, "plain prefix \(n)")
        }
        for n in 0..<gz.count {
            #expect(nifti { try NIfTI.read(bytes: Array(gz[0..<n])) } != nil, "gzip prefix \(n)")
        }
    }

    @Test func randomAndMutatedBytesThrowOrReadCleanly() throws {
        let scratch = ScratchDir()
        let plain = validFile()
        let gz = gzip(plain, scratch: scratch)
        var rng = SeededRandom(seed: 2024)
        var outcomes = [String: Int]()
        func attempt(_ bytes: [UInt8]) {
            do {
                let v = try NIfTI.read(bytes: bytes)
                // A mutation may leave a valid file: then it must be self-consistent.
                #expect(v.voxels.count == v.dims.reduce(1, *))
                outcomes["read", default: 0] += 1
            } catch let e as NIfTIError {
                #expect(!e.description.isEmpty)
                outcomes["\(e.kind)", default: 0] += 1
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
        // Pure noise, with and without a gzip or NIfTI-looking start.
        for i in 0..<1000 {
            var bytes = (0..<rng.int(0..<800)).map { _ in rng.byte() }
            if i % 3 == 1 && bytes.count >= 2 { bytes[0] = 0x1f; bytes[1] = 0x8b }
            if i % 3 == 2 && bytes.count >= 348 { bytes.replaceSubrange(0..<4, with: [0x5c, 0x01, 0, 0]) }
            attempt(bytes)
        }
        // Mutations of the valid file, aimed at the header half the time.
        for source in [plain, gz] {
            for _ in 0..<1500 {
                var bytes = source
                for _ in 0..<rng.int(1..<6) {
                    let at = rng.next() % 2 == 0 && source == plain ? rng.int(0..<352) : rng.int(0..<bytes.count)
                    switch rng.int(0..<4) {
                    case 0: bytes[at] = rng.byte()
                    case 1: bytes[at] ^= 1 << UInt8(rng.int(0..<8))
                    case 2: bytes[at] = [0x00, 0xff, 0x7f, 0x80][rng.int(0..<4)]
                    default: bytes.removeSubrange(at..<min(bytes.count, at + rng.int(1..<40)))
                    }
                    if bytes.isEmpty { break }
                }
                attempt(bytes)
            }
        }
        #expect(outcomes.values.reduce(0, +) == 4000)
        #expect(outcomes["corrupt", default: 0] > 0 && outcomes["truncated", default: 0] > 0 && outcomes["notNIfTI", default: 0] > 0)
    }
}
