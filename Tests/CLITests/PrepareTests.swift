import CTData
import Foundation
import NIfTI
import Testing

/// `dsan prepare` run like a user: NIfTI files written here with known geometry, a manifest, then
/// the shards checked against the expected resampled, windowed volumes.
@Suite struct PrepareTests {
    static let spacing = [0.7168, 0.7168, 1.25]

    /// HU of source voxel (i, j, k): a ramp inside the window [−1350, 150], different along each axis.
    static func hu(_ i: Int, _ j: Int, _ k: Int) -> Float { Float(-1350 + 60 * i + 30 * j + 10 * k) }

    /// The byte the shard stores for HU `h`: round(255 · (clamp(h) − lo) / width).
    static func byte(_ h: Float) -> Int { Int(((min(max(h + 1350, 0), 1500)) / 1500 * 255).rounded()) }

    static func volume(_ dims: [Int], _ affine: Affine, _ value: (Int, Int, Int) -> Float) -> Volume {
        var v = Volume(dims: dims, affine: affine)
        for k in 0..<dims[2] { for j in 0..<dims[1] { for i in 0..<dims[0] { v[i, j, k] = value(i, j, k) } } }
        return v
    }

    static func box(_ i: Int, _ j: Int, _ k: Int, _ lo: [Int], _ hi: [Int]) -> Float {
        (lo[0]..<hi[0]).contains(i) && (lo[1]..<hi[1]).contains(j) && (lo[2]..<hi[2]).contains(k) ? 1 : 0
    }

    /// Writes one case at exactly the target spacing (16³ voxels, so the output grid is the
    /// canonical grid): `flipped` stores it LPS (x and y reversed), else RAS.
    static func writeCase(_ dir: String, _ name: String, flipped: Bool, ext: String, infection: Bool = true) throws {
        let s = spacing
        let affine = flipped
            ? Affine(scale: [-s[0], -s[1], s[2]], offset: [10, 20, -30])
            : Affine(scale: s, offset: [-5, -6, -7])
        let dims = [16, 16, 16]
        try NIfTI.write(volume(dims, affine, hu), to: "\(dir)/\(name)-ct.\(ext)", as: .int16)
        try NIfTI.write(volume(dims, affine) { box($0, $1, $2, [2, 2, 1], [14, 14, 15]) }, to: "\(dir)/\(name)-lung.\(ext)", as: .uint8)
        if infection {
            try NIfTI.write(volume(dims, affine) { box($0, $1, $2, [3, 3, 2], [6, 6, 5]) }, to: "\(dir)/\(name)-inf.\(ext)", as: .uint8)
        }
    }

    static func row(_ id: String, _ label: String, _ ext: String, infection: Bool = true) -> String {
        "\(id),p-\(id),\(label),\(id)-ct.\(ext),\(id)-lung.\(ext),\(infection ? "\(id)-inf.\(ext)" : "")"
    }

    static func bytes(_ reader: ShardReader, _ index: Int) throws -> (image: [Float], lung: [UInt8]) {
        var image = [Float](repeating: 0, count: reader.voxels), scratch = [UInt8](repeating: 0, count: reader.voxels)
        try image.withUnsafeMutableBufferPointer { im in
            try scratch.withUnsafeMutableBufferPointer { try reader.readImage(index, into: im, scratch: $0) }
        }
        try scratch.withUnsafeMutableBufferPointer { try reader.readMask(index, infection: false, into: $0) }
        return (image, scratch)
    }

    @Test func preparesResampledWindowedCasesInManifestOrder() throws {
        let dir = try scratchDirectory("prepare")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeCase(dir, "ras", flipped: false, ext: "nii")
        try Self.writeCase(dir, "lps", flipped: true, ext: "nii.gz")
        // 8³ voxels at twice the target spacing: resampled to 16³ (r = 0.5), a ramp along x only;
        // no infection mask; the lung mask is two halves joined with `+`.
        let coarse = Affine(scale: Self.spacing.map { $0 * 2 })
        try NIfTI.write(Self.volume([8, 8, 8], coarse) { i, _, _ in Float(-1350 + 100 * i) }, to: "\(dir)/coarse-ct.nii.gz", as: .int16)
        try NIfTI.write(Self.volume([8, 8, 8], coarse) { i, _, _ in i < 4 ? 1 : 0 }, to: "\(dir)/coarse-left.nii.gz", as: .uint8)
        try NIfTI.write(Self.volume([8, 8, 8], coarse) { i, _, _ in i < 4 ? 0 : 1 }, to: "\(dir)/coarse-right.nii.gz", as: .uint8)
        let manifest = ["case_id,patient_id,label,image,lung,infection",
                        Self.row("ras", "covid", "nii"), Self.row("lps", "cap", "nii.gz"),
                        "coarse,p-coarse,covid,coarse-ct.nii.gz,coarse-left.nii.gz+coarse-right.nii.gz,"]
        try manifest.joined(separator: "\n").write(toFile: "\(dir)/cases.csv", atomically: true, encoding: .utf8)

        let r = try dsan("prepare", "--manifest", "\(dir)/cases.csv", "--out", "\(dir)/shards", "--size", "16x16x16",
                         "--shard-size", "2", "--jobs", "2")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wrote 3 cases (2 COVID-19, 1 CAP; 1 without infection mask, predict only) in 2 shard(s) at 16x16x16"), "\(r.stdout)")

        let cohort = try Cohort(directory: "\(dir)/shards")
        #expect(cohort.cases.map(\.caseID) == ["ras", "lps", "coarse"])
        #expect(cohort.cases.map(\.label) == [.covid, .cap, .covid])
        #expect(cohort.cases[0].infectionRatio == Float(27.0 / 2016.0))
        #expect(cohort.cases[1].infectionRatio == Float(27.0 / 2016.0))
        #expect(!cohort.cases[2].hasInfectionMask)

        // RAS at the target spacing: output (x, y, z) is source (x, y, z).
        let (ras, rasIndex) = cohort.shard(of: 0)
        let (rasImage, rasLung) = try Self.bytes(ras, rasIndex)
        // LPS: output (x, y, z) is source (15 − x, 15 − y, z).
        let (lps, lpsIndex) = cohort.shard(of: 1)
        let (lpsImage, lpsLung) = try Self.bytes(lps, lpsIndex)
        var worst = 0
        for z in 0..<16 { for y in 0..<16 { for x in 0..<16 {
            let o = x + 16 * (y + 16 * z)
            worst = max(worst, abs(Int((rasImage[o] * 255).rounded()) - Self.byte(Self.hu(x, y, z))))
            worst = max(worst, abs(Int((lpsImage[o] * 255).rounded()) - Self.byte(Self.hu(15 - x, 15 - y, z))))
            #expect(rasLung[o] == UInt8(Self.box(x, y, z, [2, 2, 1], [14, 14, 15])))
            #expect(lpsLung[o] == UInt8(Self.box(15 - x, 15 - y, z, [2, 2, 1], [14, 14, 15])))
        } } }
        #expect(worst <= 1, "largest byte difference \(worst) (1 allows rounding ties)")

        // The transforms are stored: the output grid of RAS is the scan's, LPS's is flipped back.
        let rasAffine = try #require(ras.transform(rasIndex)).outputAffine
        #expect(rasAffine.maxDifference(Affine(scale: Self.spacing, offset: [-5, -6, -7])) < 1e-4)
        let lpsTransform = try #require(lps.transform(lpsIndex))
        #expect(lpsTransform.reorientation.flipped == [true, true, false])
        // Output voxel (0, 0, 0) is source voxel (15, 15, 0).
        let world = lpsTransform.outputAffine.apply([0, 0, 0])
        let expected = Affine(scale: [-Self.spacing[0], -Self.spacing[1], Self.spacing[2]], offset: [10, 20, -30]).apply([15, 15, 0])
        #expect(zip(world, expected).allSatisfy { abs($0 - $1) < 1e-4 }, "\(world) vs \(expected)")

        // Coarse: output x = k samples canonical c = k/2 − 1/4 of the ramp −1350 + 100 c (interior k).
        let (coarseShard, coarseIndex) = cohort.shard(of: 2)
        let (coarseImage, coarseLung) = try Self.bytes(coarseShard, coarseIndex)
        #expect(coarseLung.allSatisfy { $0 == 1 }, "the union of the two halves covers the volume")
        for x in 1..<15 {
            let c = Float(x) / 2 - 0.25
            let got = Int((coarseImage[x + 16 * (8 + 16 * 8)] * 255).rounded())
            let want = Self.byte(-1350 + 100 * c)
            #expect(abs(got - want) <= 1, "x = \(x): \(got) vs \(want)")
        }
        #expect(coarseShard.transform(coarseIndex)?.scale == 1)
    }

    /// A manifest with a truncated NIfTI and a mask on another grid between two good cases.
    static func brokenCohort() throws -> String {
        let dir = try scratchDirectory("prepare-broken")
        try writeCase(dir, "good1", flipped: false, ext: "nii")
        try writeCase(dir, "good2", flipped: true, ext: "nii.gz")
        try writeCase(dir, "trunc", flipped: false, ext: "nii")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/trunc-ct.nii"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: "\(dir)/trunc-ct.nii"))
        try writeCase(dir, "mismatch", flipped: false, ext: "nii")
        try NIfTI.write(volume([16, 16, 8], Affine(scale: spacing)) { _, _, _ in 1 }, to: "\(dir)/mismatch-lung.nii", as: .uint8)
        let manifest = ["case_id,patient_id,label,image,lung,infection", row("good1", "covid", "nii"),
                        row("trunc", "cap", "nii"), row("mismatch", "cap", "nii"), row("good2", "covid", "nii.gz")]
        try manifest.joined(separator: "\n").write(toFile: "\(dir)/cases.csv", atomically: true, encoding: .utf8)
        return dir
    }

    @Test func aBrokenCaseStopsTheRunAndIsNamed() throws {
        let dir = try Self.brokenCohort()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try dsan("prepare", "--manifest", "\(dir)/cases.csv", "--out", "\(dir)/shards", "--size", "16x16x16",
                         "--shard-size", "1", "--jobs", "1")
        #expect(r.status != 0)
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("dsan:") }
        #expect(lines.count == 2, "\(r.stderr)")
        #expect(lines.first?.hasPrefix("dsan: case trunc (manifest line 3) failed: \(dir)/trunc-ct.nii: ") == true, "\(r.stderr)")
        #expect(lines.last == "dsan: 1 case(s) failed (trunc); no shards written to \(dir)/shards. Fix them, or pass --keep-going to skip them")
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/shards")
        #expect(left.isEmpty, "\(left)")
    }

    @Test func keepGoingSkipsAndListsTheBrokenCases() throws {
        let dir = try Self.brokenCohort()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try dsan("prepare", "--manifest", "\(dir)/cases.csv", "--out", "\(dir)/shards", "--size", "16x16x16",
                         "--keep-going", "--jobs", "2")
        #expect(r.status == 0, "\(r.stderr)")
        let failures = r.stderr.split(separator: "\n").filter { $0.hasPrefix("dsan: case ") }
        #expect(failures.count == 2, "\(r.stderr)")
        #expect(failures[0].hasPrefix("dsan: case trunc (manifest line 3) failed: \(dir)/trunc-ct.nii: "))
        #expect(failures[1] == "dsan: case mismatch (manifest line 4) failed: \(dir)/mismatch-lung.nii: is 16×16×8 voxels but its image \(dir)/mismatch-ct.nii is 16×16×16; masks must be on the image's voxel grid: resample the mask onto the image")
        #expect(r.stdout.contains("skipped 2 failed case(s): trunc, mismatch"), "\(r.stdout)")
        let cohort = try Cohort(directory: "\(dir)/shards")
        #expect(cohort.cases.map(\.caseID) == ["good1", "good2"])
    }

    @Test func goldenErrors() throws {
        let dir = try scratchDirectory("prepare-errors")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try dsan("prepare", "--manifest", "\(dir)/none.csv", "--out", "\(dir)/shards")
        #expect(missing.status != 0)
        #expect(missing.stderr == "dsan: \(dir)/none.csv: cannot read the manifest (missing or unreadable)\n")

        try "case_id,patient_id,label,image,lung,infection\na,p,flu,a.nii,a-lung.nii,\n".write(toFile: "\(dir)/bad.csv", atomically: true, encoding: .utf8)
        let label = try dsan("prepare", "--manifest", "\(dir)/bad.csv", "--out", "\(dir)/shards")
        #expect(label.stderr == "dsan: \(dir)/bad.csv: line 2: case a: unknown label `flu`; use `covid` or `cap`\n")

        let jobs = try dsan("prepare", "--manifest", "\(dir)/bad.csv", "--out", "\(dir)/shards", "--jobs", "0")
        #expect(jobs.status != 0)
        #expect(jobs.stderr.hasPrefix("Error: --jobs must be at least 1, got 0\n"), "\(jobs.stderr)")
    }

    /// Golden help: a change to the flags or their wording shows up here (STYLE.md, "Tests that can fail").
    @Test func help() throws {
        let r = try dsan("prepare", "--help")
        #expect(r.status == 0)
        #expect(r.stdout == Self.helpText + "\n")
    }

    static let helpText = #"""
OVERVIEW: Preprocess NIfTI cases listed in a manifest into HDF5 shards.

The manifest is CSV with the columns
case_id,patient_id,label,image,lung,infection (paths relative to the manifest;
label covid or cap; an empty infection cell makes a predict-only case). Several
lung masks on the image's grid (e.g. lobes) may be joined with + in the lung
cell; their union is the lung mask. Each case is reoriented to RAS+, resampled
to 0.7168 × 0.7168 × 1.25 mm, shrunk by one common factor to fit --size,
zero-padded and windowed to [−1350, 150] HU (paper §IV-B, Docs/nifti.md).
Shards hold the cases in manifest order with each case's preprocessing
transform, so attention maps can be put back on the scan.

Cases run in parallel (--jobs at a time; a 512×512×300 scan takes about 1 GB
while it is prepared). A failed case is reported by name; without --keep-going
the run stops and removes the shards it wrote, with --keep-going the failed
cases are skipped and listed.

Example: dsan prepare --manifest cases.csv --out data/prepared --size
138x256x256

USAGE: dsan prepare --manifest <manifest> --out <out> [--size <size>] [--shard-size <shard-size>] [--keep-going] [--jobs <jobs>]

OPTIONS:
  --manifest <manifest>   CSV manifest:
                          case_id,patient_id,label,image,lung,infection.
  --out <out>             Directory to write the shards into (created if
                          missing; must hold no shards yet).
  --size <size>           Volume size DxHxW (each ≥ 16). (default: 138x256x256)
  --shard-size <shard-size>
                          Cases per shard file (a shard's cases wait in memory,
                          3 bytes per voxel each, until it is written).
                          (default: 16)
  --keep-going            Skip cases that fail (listed at the end) instead of
                          stopping.
  --jobs <jobs>           Cases prepared at the same time (default: the number
                          of cores).
  --version               Show the version.
  -h, --help              Show help information.

"""#
}
