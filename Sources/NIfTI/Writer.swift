#if canImport(Glibc)
import Glibc
#endif

enum Writer {
    /// The header dsan writes: little-endian, vox_offset 352, no extensions, units mm, sform and
    /// qform both the given affine with code 1 (scanner), pixdim from the affine's column lengths.
    static func header(for volume: Volume, as type: NIfTIDatatype) -> NIfTIHeader {
        var h = NIfTIHeader()
        h.dim = [3, volume.dims[0], volume.dims[1], volume.dims[2], 1, 1, 1, 1]
        h.datatype = type.rawValue
        h.bitpix = Int16(8 * type.size)
        let q = Quaternion(affine: volume.affine)
        h.pixdim = [Float(q.qfac)] + q.spacing.map { Float($0) } + [1, 1, 1, 1]
        h.voxOffset = 352
        h.sclSlope = 1
        h.sclInter = 0
        h.xyztUnits = 2  // NIFTI_UNITS_MM
        h.descrip = "dsan"
        h.qformCode = 1
        h.sformCode = 1
        h.quaternB = Float(q.b); h.quaternC = Float(q.c); h.quaternD = Float(q.d)
        h.qoffset = q.offset.map { Float($0) }
        h.srow = (0..<3).map { r in (0..<4).map { c in Float(volume.affine[r, c]) } }
        h.magic = "n+1"
        return h
    }

    static func write(_ volume: Volume, to path: String, as type: NIfTIDatatype, level: Int) throws {
        precondition((0...9).contains(level), "gzip level is 0 to 9")
        guard volume.affine.isFinite, volume.affine.determinant != 0 else {
            throw NIfTIError(file: path, kind: .badGeometry,
                             problem: "the volume's affine is singular or non-finite (\(volume.affine))",
                             remedy: "give the volume the geometry of the scan it belongs to")
        }
        let gzip = path.hasSuffix(".gz")
        // Written beside the target and renamed into place, so a reader never sees half a file.
        let partial = path + ".partial"
        do {
            let sink = try FileSink(path: partial, gzipLevel: gzip ? Int32(level) : nil)
            let h = header(for: volume, as: type)
            try h.encoded().withUnsafeBytes { try sink.write($0) }
            let chunk = 1 << 18
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * type.size, alignment: 16)
            defer { buffer.deallocate() }
            try volume.voxels.withUnsafeBufferPointer { v in
                var start = 0
                while start < v.count {
                    let n = min(chunk, v.count - start)
                    encode(type, UnsafeBufferPointer(rebasing: v[start..<(start + n)]), into: buffer.baseAddress!)
                    try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<(n * type.size)]))
                    start += n
                }
            }
            try sink.finish()
        } catch {
            unlink(partial)
            throw error
        }
        if rename(partial, path) != 0 {
            let e = errno
            unlink(partial)
            throw NIfTIError(file: path, kind: .io, problem: "cannot rename the finished file into place: \(String(cString: strerror(e)))",
                             remedy: "check the folder's permissions")
        }
    }

    /// Float → the stored type, little-endian. Integer types round to nearest and clamp to the
    /// type's range (NaN becomes 0).
    static func encode(_ type: NIfTIDatatype, _ v: UnsafeBufferPointer<Float>, into out: UnsafeMutableRawPointer) {
        switch type {
        case .uint8: integers(UInt8.self, v, out)
        case .int8: integers(Int8.self, v, out)
        case .int16: integers(Int16.self, v, out)
        case .uint16: integers(UInt16.self, v, out)
        case .int32: integers(Int32.self, v, out)
        case .uint32: integers(UInt32.self, v, out)
        case .int64: integers(Int64.self, v, out)
        case .uint64: integers(UInt64.self, v, out)
        case .float32:
            for i in 0..<v.count { out.storeBytes(of: v[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .float64:
            for i in 0..<v.count { out.storeBytes(of: Double(v[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        }
    }

    static func integers<T: FixedWidthInteger>(_: T.Type, _ v: UnsafeBufferPointer<Float>, _ out: UnsafeMutableRawPointer) {
        let lo = Double(T.min), hi = Double(T.max)
        for i in 0..<v.count {
            let x = Double(v[i]).rounded()
            let t: T = x.isNaN ? 0 : x <= lo ? T.min : x >= hi ? T.max : T(x)
            out.storeBytes(of: t.littleEndian, toByteOffset: MemoryLayout<T>.size * i, as: T.self)
        }
    }
}
