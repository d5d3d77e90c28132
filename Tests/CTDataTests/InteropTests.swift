import Foundation
import Testing
@testable import CTData

/// python3 with h5py, if installed (launch/test.sh installs h5py from PyPI when it can).
let pythonWithH5py: String? = {
    for python in ["python3"] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", "import h5py, numpy"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        if (try? p.run()) != nil {
            p.waitUntilExit()
            if p.terminationStatus == 0 { return python }
        }
    }
    return nil
}()

func runPython(_ python: String, _ script: String, _ arguments: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [python, "-c", script] + arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self))
}

/// The outside-tool contract of DESIGN.md §7, checked with the real h5py.
@Suite(.enabled(if: pythonWithH5py != nil, "needs python3 with h5py and numpy"))
struct H5pyInteropTests {
    @Test func shardWrittenByH5pyWithDefaultsIsRead() throws {
        let dir = try temporaryDirectory("h5py")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The snippet of Docs/data-format.md, with data filled in.
        let script = """
        import sys, h5py, numpy as np
        N, D, H, W = 2, 16, 20, 24
        rng = np.random.default_rng(0)
        image_u8 = rng.integers(0, 256, (N, D, H, W), dtype=np.uint8)
        lung = np.zeros((N, D, H, W), np.uint8); lung[:, 4:12, 5:15, 6:18] = 1
        infection = np.zeros_like(lung); infection[0, 5:7, 6:8, 7:9] = 1; infection[1, 5, 6, 7] = 1
        with h5py.File(sys.argv[1], "w") as f:
            for name, dtype in [("image", "u1"), ("lung", "u1"), ("infection", "u1")]:
                f.create_dataset(name, (N, D, H, W), dtype=dtype, chunks=(1, D, H, W), compression="gzip")
            f["image"][...] = image_u8
            f["lung"][...] = lung; f["infection"][...] = infection
            f["label"] = np.array([1, 0], "u1")
            f["infection_ratio"] = (infection.sum((1, 2, 3)) / lung.sum((1, 2, 3))).astype("f4")
            f["case_id"] = ["case-a", "case-ü"]; f["patient_id"] = ["pat-1", "pat-2"]
        print(int(image_u8[1].astype(np.int64).sum()))
        """
        let (status, out) = try runPython(pythonWithH5py!, script, [dir + "/outside-000.h5"])
        #expect(status == 0, "\(out)")
        let cohort = try Cohort(directory: dir)
        #expect(cohort.cases.map(\.caseID) == ["case-a", "case-ü"])
        #expect(cohort.cases.map(\.label) == [.covid, .cap])
        #expect(abs(cohort.cases[0].infectionRatio - 8.0 / 960) < 1e-7)
        let (reader, k) = cohort.shard(of: 1)
        var image = [Float](repeating: 0, count: reader.voxels), scratch = [UInt8](repeating: 0, count: reader.voxels)
        try image.withUnsafeMutableBufferPointer { im in try scratch.withUnsafeMutableBufferPointer { try reader.readImage(k, into: im, scratch: $0) } }
        #expect(Int(scratch.map(Int.init).reduce(0, +)) == Int(out.trimmingCharacters(in: .whitespacesAndNewlines)))
        let report = try Inspection.run(directory: dir)
        #expect(report.isValid, "\(report.problems)")
    }

    @Test func shardWrittenByDsanReadsInH5py() throws {
        let dir = try temporaryDirectory("h5py")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let infos = try SyntheticCohort.write(directory: dir, cases: 3, size: [16, 16, 16], seed: 1, shardSize: 3)
        let script = """
        import sys, h5py
        f = h5py.File(sys.argv[1], "r")
        assert f["image"].chunks == (1, 16, 16, 16) and f["image"].compression == "gzip", "layout"
        assert f.attrs["format"] == "dsan-shard" and int(f.attrs["format_version"]) == 1, "attrs"
        print(",".join(f["case_id"].asstr()[:]), ",".join(str(int(v)) for v in f["label"][:]))
        """
        let (status, out) = try runPython(pythonWithH5py!, script, [dir + "/shard-000.h5"])
        #expect(status == 0, "\(out)")
        let expected = infos.map(\.caseID).joined(separator: ",") + " " + infos.map { String($0.label.rawValue) }.joined(separator: ",")
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == expected)
    }
}
