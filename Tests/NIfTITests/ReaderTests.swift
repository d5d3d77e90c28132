import Testing
@testable import NIfTI

/// Values that every voxel type can hold: 2×3×4 = 24 voxels.
private let small: [Int] = (0..<24).map { $0 * 5 }

@Suite struct ReaderTests {
    func roundTrip<T: FixedWidthInteger>(_: T.Type, code: Int16, bigEndian: Bool) throws -> [Float] {
        var h = HandBuiltNIfTI()
        h.bigEndian = bigEndian
        h.datatype = code
        h.bitpix = Int16(8 * MemoryLayout<T>.size)
        // Negative values for signed types exercise sign extension after the byte swap.
        h.setData(small.map { T.isSigned ? T($0) - 50 : T($0) })
        return try NIfTI.read(bytes: h.bytes(), name: "hand.nii").voxels
    }

    @Test(arguments: [false, true])
    func integerTypesInBothByteOrders(bigEndian: Bool) throws {
        let signed = small.map { Float($0 - 50) }, unsigned = small.map { Float($0) }
        #expect(try roundTrip(UInt8.self, code: 2, bigEndian: bigEndian) == unsigned)
        #expect(try roundTrip(Int8.self, code: 256, bigEndian: bigEndian) == signed)
        #expect(try roundTrip(Int16.self, code: 4, bigEndian: bigEndian) == signed)
        #expect(try roundTrip(UInt16.self, code: 512, bigEndian: bigEndian) == unsigned)
        #expect(try roundTrip(Int32.self, code: 8, bigEndian: bigEndian) == signed)
        #expect(try roundTrip(UInt32.self, code: 768, bigEndian: bigEndian) == unsigned)
        #expect(try roundTrip(Int64.self, code: 1024, bigEndian: bigEndian) == signed)
        #expect(try roundTrip(UInt64.self, code: 1280, bigEndian: bigEndian) == unsigned)
    }

    @Test(arguments: [false, true])
    func floatTypesInBothByteOrders(bigEndian: Bool) throws {
        let values = small.map { Float($0) * 0.25 - 3.5 }
        var h = HandBuiltNIfTI()
        h.bigEndian = bigEndian
        h.datatype = 16; h.bitpix = 32
        h.setData(values)
        let v = try NIfTI.read(bytes: h.bytes())
        #expect(v.voxels == values)
        #expect(v.dims == [2, 3, 4])
        h.datatype = 64; h.bitpix = 64
        h.setData(values.map(Double.init))
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == values)
    }

    @Test func bigEndianGeometryIsSwappedToo() throws {
        var h = HandBuiltNIfTI()
        h.bigEndian = true
        h.sformCode = 1
        h.srow = [[2, 0, 0, -10], [0, 3, 0, 20], [0, 0, 4, 30]]
        h.setData([Int16](repeating: 7, count: 24))
        let v = try NIfTI.read(bytes: h.bytes())
        #expect(v.affine == Affine(rows: [[2, 0, 0, -10], [0, 3, 0, 20], [0, 0, 4, 30]]))
        #expect(v.spacing == [2, 3, 4])
        #expect(v.geometrySource == .sform(code: 1))
    }

    @Test func sclSlopeAndInterApply() throws {
        var h = HandBuiltNIfTI()
        h.setData((0..<24).map { Int16($0) })
        h.sclSlope = 2; h.sclInter = -1024
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == (0..<24).map { Float($0 * 2 - 1024) })
        // Slope 0 means "no scaling" (NIfTI-1 standard), whatever the intercept says.
        h.sclSlope = 0; h.sclInter = 100
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == (0..<24).map { Float($0) })
        // Non-finite slope: no scaling, as nibabel.
        h.sclSlope = .nan
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == (0..<24).map { Float($0) })
        // Scaling applies to float data as well.
        h.sclSlope = 0.5; h.sclInter = 1
        h.datatype = 16; h.bitpix = 32
        h.setData((0..<24).map { Float($0) })
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == (0..<24).map { Float($0) * 0.5 + 1 })
    }

    @Test func sformTakesPrecedenceOverQform() throws {
        var h = HandBuiltNIfTI()
        h.setData([Int16](repeating: 0, count: 24))
        h.pixdim = [1, 2, 2, 2, 0, 0, 0, 0]
        h.qformCode = 1
        h.qoffset = [5, 6, 7]
        h.sformCode = 2
        h.srow = [[-1, 0, 0, 100], [0, -1, 0, 100], [0, 0, 3, -50]]
        var v = try NIfTI.read(bytes: h.bytes())
        #expect(v.geometrySource == .sform(code: 2))
        #expect(v.affine == Affine(rows: [[-1, 0, 0, 100], [0, -1, 0, 100], [0, 0, 3, -50]]))
        // sform_code 0: the qform (identity rotation) with pixdim and qoffset.
        h.sformCode = 0
        v = try NIfTI.read(bytes: h.bytes())
        #expect(v.geometrySource == .qform(code: 1))
        #expect(v.affine == Affine(scale: [2, 2, 2], offset: [5, 6, 7]))
        // Neither: pixdim scaling, origin at voxel 0.
        h.qformCode = 0
        v = try NIfTI.read(bytes: h.bytes())
        #expect(v.geometrySource == .pixdim)
        #expect(v.affine == Affine(scale: [2, 2, 2]))
    }

    @Test func qformQuaternionAndQfac() throws {
        var h = HandBuiltNIfTI()
        h.setData([Int16](repeating: 0, count: 24))
        h.qformCode = 1
        // (b, c, d) = (0, 0, 1): a = 0, a 180° rotation about z, i.e. LPS for voxel axes 0, 1.
        h.quatern = [0, 0, 1]
        h.pixdim = [-1, 0.5, 0.75, 2.5, 0, 0, 0, 0]
        h.qoffset = [90, 126, -72]
        let v = try NIfTI.read(bytes: h.bytes())
        // qfac = pixdim[0] = −1 negates the third column.
        #expect(v.affine.maxDifference(Affine(rows: [[-0.5, 0, 0, 90], [0, -0.75, 0, 126], [0, 0, -2.5, -72]])) < 1e-12)
        #expect(v.orientation == "LPI")
    }

    @Test func fourDWithOneVolumeIsRead() throws {
        var h = HandBuiltNIfTI()
        h.dim = [4, 2, 3, 4, 1, 1, 1, 1]
        h.setData([Int16](repeating: 3, count: 24))
        #expect(try NIfTI.read(bytes: h.bytes()).dims == [2, 3, 4])
    }

    @Test func voxOffsetBeyond352SkipsExtensions() throws {
        var h = HandBuiltNIfTI()
        h.voxOffset = 400
        h.setData((0..<24).map { Int16($0) })
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == (0..<24).map { Float($0) })
        // vox_offset 0 (a known writer bug) reads from 352, as nibabel.
        h.voxOffset = 0
        #expect(try NIfTI.read(bytes: h.bytes()).voxels == (0..<24).map { Float($0) })
    }

    @Test func malformedHeadersThrowClearErrors() throws {
        func error(_ edit: (inout HandBuiltNIfTI) -> Void) -> NIfTIError? {
            var h = HandBuiltNIfTI()
            h.setData([Int16](repeating: 1, count: 24))
            edit(&h)
            return nifti { try NIfTI.read(bytes: h.bytes(), name: "scan.nii") }
        }
        let fourD = error { $0.dim = [4, 2, 3, 4, 5, 1, 1, 1] }
        #expect(fourD?.kind == .unsupported)
        #expect(fourD?.description.hasPrefix("scan.nii: the image is 4D (2×3×4×5 voxels)") == true)
        #expect(error { $0.dim = [2, 2, 3, 1, 1, 1, 1, 1] }?.kind == .unsupported)
        let zero = error { $0.dim = [3, 2, 0, 4, 1, 1, 1, 1] }
        #expect(zero?.kind == .badHeader)
        #expect(zero?.description.contains("dim[2] is 0") == true)
        #expect(error { $0.dim = [3, 2, -3, 4, 1, 1, 1, 1] }?.kind == .badHeader)
        #expect(error { $0.dim = [9, 2, 3, 4, 1, 1, 1, 1] }?.kind == .badHeader)
        let huge = error { $0.dim = [7, 32767, 32767, 32767, 1, 1, 1, 1] }
        #expect(huge?.kind == .truncated)
        #expect(huge?.description.contains("32767×32767×32767 int16 voxels (70 TB)") == true)
        let type = error { $0.datatype = 128 }
        #expect(type?.kind == .unsupported)
        #expect(type?.description.contains("code 128 (RGB24)") == true)
        #expect(error { $0.datatype = 9999 }?.kind == .unsupported)
        #expect(error { $0.voxOffset = 100 }?.kind == .badHeader)
        #expect(error { $0.voxOffset = .nan }?.kind == .badHeader)
        #expect(error { $0.voxOffset = 352.5 }?.kind == .badHeader)
        #expect(error { $0.voxOffset = 1e30 }?.kind == .badHeader)
        #expect(error { $0.magic = "ni1" }?.kind == .notNIfTI)
        #expect(error { $0.magic = "xyz" }?.kind == .notNIfTI)
        #expect(error { $0.sizeofHdr = 540 }?.description.contains("NIfTI-2") == true)
        #expect(error { $0.sizeofHdr = 1234 }?.kind == .notNIfTI)
        let sform = error { $0.sformCode = 1 }  // all-zero srow, no qform
        #expect(sform?.kind == .badGeometry)
    }

    @Test func singularSformFallsBackToQform() throws {
        var h = HandBuiltNIfTI()
        h.setData([Int16](repeating: 1, count: 24))
        h.sformCode = 1
        h.qformCode = 1
        h.qoffset = [1, 2, 3]
        let v = try NIfTI.read(bytes: h.bytes())
        #expect(v.geometrySource == .qform(code: 1))
        #expect(v.affine == Affine(scale: [1, 1, 1], offset: [1, 2, 3]))
    }

    @Test func truncatedDataNamesSizes() throws {
        var h = HandBuiltNIfTI()
        h.dim = [3, 64, 64, 10, 1, 1, 1, 1]
        h.setData([Int16](repeating: 1, count: 64 * 64 * 10))
        let bytes = h.bytes()
        let e = nifti { try NIfTI.read(bytes: Array(bytes[0..<(352 + 12_000)]), name: "scan.nii") }
        #expect(e?.kind == .truncated)
        #expect(e?.description == "scan.nii: header says 64×64×10 int16 voxels (82 kB) from byte 352 but the file holds 12 kB; the file is truncated or its header is damaged; re-export it")

        let scratch = ScratchDir()
        let gz = gzip(bytes, scratch: scratch)
        let cut = nifti { try NIfTI.read(bytes: Array(gz[0..<(gz.count - 10)]), name: "scan.nii.gz") }
        #expect(cut?.kind == .truncated)
        let short = nifti { try NIfTI.read(bytes: Array(gz[0..<(gz.count / 2)]), name: "scan.nii.gz") }
        #expect(short?.kind == .truncated)
        #expect(short?.description.hasPrefix("scan.nii.gz: header says 64×64×10 int16 voxels (82 kB) but the gzip stream holds") == true)
        // A flipped bit in the compressed data: zlib's own message.
        var damaged = gz
        damaged[gz.count - 6] ^= 0x40  // inside the CRC-32 trailer
        let crc = nifti { try NIfTI.read(bytes: damaged, name: "scan.nii.gz") }
        #expect(crc?.kind == .corrupt)
        #expect(crc?.description.contains("incorrect data check") == true)
    }

    @Test func concatenatedGzipMembersAreOneStream() throws {
        var h = HandBuiltNIfTI()
        h.setData((0..<24).map { Int16($0) })
        let bytes = h.bytes()
        let scratch = ScratchDir()
        let twoMembers = gzip(Array(bytes[0..<200]), scratch: scratch) + gzip(Array(bytes[200...]), scratch: scratch)
        #expect(try NIfTI.read(bytes: twoMembers).voxels == (0..<24).map { Float($0) })
    }

    @Test func filesOnDiskAndMissingFiles() throws {
        let scratch = ScratchDir()
        var h = HandBuiltNIfTI()
        h.setData((0..<24).map { Int16($0) })
        writeBytes(h.bytes(), scratch.path("a.nii"))
        writeBytes(gzip(h.bytes(), scratch: scratch), scratch.path("a.nii.gz"))
        #expect(try NIfTI.read(scratch.path("a.nii")).voxels == (0..<24).map { Float($0) })
        #expect(try NIfTI.read(scratch.path("a.nii.gz")).voxels == (0..<24).map { Float($0) })
        #expect(try NIfTI.readHeader(scratch.path("a.nii.gz")).dim[1...3] == [2, 3, 4])
        let missing = nifti { try NIfTI.read(scratch.path("none.nii.gz")) }
        #expect(missing?.kind == .io)
        #expect(missing?.description.contains("No such file or directory; check the path") == true)
        #expect(nifti { try NIfTI.read(scratch.url.path) }?.kind == .io)  // a folder
    }
}
