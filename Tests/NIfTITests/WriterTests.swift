import Foundation
import Testing
@testable import NIfTI

@Suite struct WriterTests {
    /// An oblique, anisotropic, left-handed affine, as scanners produce.
    static let oblique: Affine = {
        let t = 0.3, c = 0.5
        // rotation about z by t, then about x by c, times spacing (0.7, 0.8, 2.5), z flipped
        let rz = [[cos(t), -sin(t), 0.0], [sin(t), cos(t), 0], [0, 0, 1]]
        let rx = [[1.0, 0, 0], [0, cos(c), -sin(c)], [0, sin(c), cos(c)]]
        let s = [0.7, 0.8, -2.5]
        var rows: [[Double]] = []
        for i in 0..<3 {
            var row: [Double] = []
            for j in 0..<3 { row.append((0..<3).reduce(0) { $0 + rx[i][$1] * rz[$1][j] } * s[j]) }
            rows.append(row + [[-120.5, 88.25, 301.0][i]])
        }
        return Affine(rows: rows)
    }()

    @Test(arguments: NIfTIDatatype.allCases)
    func roundTripEveryTypeThroughNiiAndNiiGz(type: NIfTIDatatype) throws {
        let scratch = ScratchDir()
        let dims = [5, 4, 3]
        var rng = SeededRandom(seed: 11)
        let values: [Float] = (0..<60).map { _ in
            switch type {
            case .float32, .float64: return Float(rng.unit() * 4000 - 2000)
            case .uint8: return Float(rng.int(0..<256))
            case .int8: return Float(rng.int(0..<256) - 128)
            default: return Float(rng.int(0..<2000)) - (type.description.hasPrefix("u") ? 0 : 1000)
            }
        }
        let volume = Volume(dims: dims, voxels: values, affine: Self.oblique)
        for name in ["v.nii", "v.nii.gz"] {
            let path = scratch.path(name)
            try NIfTI.write(volume, to: path, as: type)
            let back = try NIfTI.read(path)
            #expect(back.dims == dims)
            #expect(back.voxels == values, "\(type) through \(name)")
            #expect(back.geometrySource == .sform(code: 1))
            // The sform is stored as float32.
            #expect(back.affine.maxDifference(Self.oblique) < 1e-4)
            let header = try NIfTI.readHeader(path)
            #expect(header.datatype == type.rawValue)
            #expect(header.qformCode == 1 && header.sformCode == 1)
        }
        #expect(fileBytes(scratch.path("v.nii.gz"))[0..<2] == [0x1f, 0x8b])
    }

    @Test func integerTypesRoundAndClamp() throws {
        let scratch = ScratchDir()
        let volume = Volume(dims: [4, 1, 1], voxels: [-3.6, 0.4, 254.5, 999], affine: .identity)
        try NIfTI.write(volume, to: scratch.path("m.nii.gz"), as: .uint8)
        #expect(try NIfTI.read(scratch.path("m.nii.gz")).voxels == [0, 0, 255, 255])
        let nan = Volume(dims: [1, 1, 1], voxels: [.nan], affine: .identity)
        try NIfTI.write(nan, to: scratch.path("n.nii"), as: .int16)
        #expect(try NIfTI.read(scratch.path("n.nii")).voxels == [0])
    }

    /// The qform the writer stores is the affine's rigid part: a reader that ignores the sform
    /// (old tools) puts the voxels at the same place.
    @Test func writtenQformMatchesTheAffine() throws {
        let scratch = ScratchDir()
        for affine in [Self.oblique, Affine(scale: [-0.7, -0.7, 1.25], offset: [180, 170, -300]),
                       Affine(rows: [[0, 0, 2, 1], [-1, 0, 0, 2], [0, -3, 0, 3]])] {
            let path = scratch.path("q.nii")
            try NIfTI.write(Volume(dims: [2, 2, 2], affine: affine), to: path)
            var bytes = fileBytes(path)
            bytes[254] = 0; bytes[255] = 0  // sform_code = 0: the reader falls back to the qform
            let q = try NIfTI.read(bytes: bytes)
            #expect(q.geometrySource == .qform(code: 1))
            #expect(q.affine.maxDifference(affine) < 1e-4, "\(q.affine) vs \(affine)")
        }
    }

    @Test func quaternionRoundTripsThroughTheAffine() {
        let q = Quaternion(affine: Self.oblique)
        #expect(q.qfac == -1)
        #expect(q.affine.maxDifference(Self.oblique) < 1e-12)
    }

    @Test func writingLeavesNoPartialFileOnFailure() throws {
        let scratch = ScratchDir()
        let e = nifti { try NIfTI.write(Volume(dims: [1, 1, 1]), to: scratch.path("no/such/dir/a.nii.gz")) }
        #expect(e?.kind == .io)
        let singular = Volume(dims: [1, 1, 1], affine: Affine(scale: [1, 0, 1]))
        #expect(nifti { try NIfTI.write(singular, to: scratch.path("s.nii")) }?.kind == .badGeometry)
    }
}
