// zlib, wrapped in three layers as swift-system does: the raw C call, a check that turns every
// return code into `NIfTIError` carrying zlib's own `msg`, and the streaming sources and sinks
// the reader and writer use. The corresponding C functions are `inflateInit2`, `inflate`,
// `inflateReset`, `inflateEnd`, `deflateInit2`, `deflate` and `deflateEnd`.
import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Text for a zlib return code, preferring the stream's own `msg`.
private func zlibText(_ code: Int32, _ stream: UnsafeMutablePointer<z_stream>) -> String {
    if let msg = stream.pointee.msg { return String(cString: msg) }
    switch code {
    case Z_NEED_DICT: return "a preset dictionary is needed"
    case Z_ERRNO: return "file error"
    case Z_STREAM_ERROR: return "inconsistent stream state"
    case Z_DATA_ERROR: return "invalid or incomplete deflate data"
    case Z_MEM_ERROR: return "out of memory"
    case Z_BUF_ERROR: return "no progress possible"
    case Z_VERSION_ERROR: return "zlib version mismatch"
    default: return "return code \(code)"
    }
}

// MARK: - Byte sources

/// A forward-only stream of bytes: a file, a memory buffer or a gzip stream over either.
protocol ByteSource: AnyObject {
    /// Fills `buffer` as far as the data goes; returns the byte count, short only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// After the last needed byte: checks what remains (for gzip, drains the stream to verify
    /// its CRC and length).
    func finish() throws
}

extension ByteSource {
    /// Reads and discards `count` bytes; returns how many there were.
    func skip(_ count: Int) throws -> Int {
        var left = count
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(count, 1), 1 << 16), alignment: 8)
        defer { scratch.deallocate() }
        while left > 0 {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(left, scratch.count)]))
            if n == 0 { break }
            left -= n
        }
        return count - left
    }
}

/// An open file descriptor, read sequentially. The corresponding C functions are `open`, `read`,
/// `fstat` and `close`.
final class FileSource: ByteSource {
    let path: String
    let fd: Int32
    /// Size in bytes at open time.
    let size: Int

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw NIfTIError(file: path, kind: .io, problem: "cannot open: \(String(cString: strerror(e)))",
                             remedy: e == ENOENT ? "check the path" : "check the file's permissions")
        }
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw NIfTIError(file: path, kind: .io, problem: "not a regular file", remedy: "give the path of a .nii or .nii.gz file")
        }
        self.fd = fd
        self.size = Int(st.st_size)
    }

    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                throw NIfTIError(file: path, kind: .io, problem: "read failed: \(String(cString: strerror(e)))",
                                 remedy: "check the disk or file system")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    func finish() throws {}
}

/// Bytes already in memory (tests, fuzzing, data received over the network).
final class MemorySource: ByteSource {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position)
        if n > 0 {
            bytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
            }
        }
        position += n
        return n
    }

    func finish() throws {}
}

/// The decompressed bytes of a gzip (or zlib) stream read from `input`, possibly several
/// concatenated gzip members, as `gzip -d` accepts them.
final class GzipSource: ByteSource {
    static let chunk = 1 << 20
    let input: ByteSource
    let file: String
    let stream: UnsafeMutablePointer<z_stream>
    let inBuffer: UnsafeMutableRawBufferPointer
    var inputEnded = false
    var streamEnded = false
    /// Compressed and decompressed byte counts so far, for messages.
    var consumed = 0
    var produced = 0

    init(input: ByteSource, file: String) throws {
        self.input = input
        self.file = file
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        inBuffer = .allocate(byteCount: GzipSource.chunk, alignment: 16)
        let rc = dsan_z_inflate_init(stream)
        if rc != dsan_z_ok() {
            let text = zlibText(rc, stream)
            stream.deallocate()
            inBuffer.deallocate()
            throw NIfTIError(file: file, kind: .corrupt, problem: "zlib inflateInit2 failed: \(text)",
                             remedy: "check the zlib installation")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        inBuffer.deallocate()
    }

    /// Refills the input buffer when it is empty; false at the end of the input.
    private func refill() throws -> Bool {
        if stream.pointee.avail_in > 0 { return true }
        if inputEnded { return false }
        let n = try input.read(into: inBuffer)
        if n < inBuffer.count { inputEnded = true }  // sources return short reads only at their end
        if n == 0 { return false }
        consumed += n
        stream.pointee.next_in = inBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = uInt(n)
        return true
    }

    private func corrupt(_ rc: Int32) -> NIfTIError {
        NIfTIError(file: file, kind: .corrupt,
                   problem: "the gzip stream is corrupt after \(formatBytes(produced)) of data (zlib inflate: \(zlibText(rc, stream)))",
                   remedy: "the file is damaged; re-download or re-export it")
    }

    /// Decompresses into `buffer`; returns fewer bytes than asked only when the stream (or, for a
    /// truncated file, the input) ends. Corrupt data throws.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            if streamEnded {
                // Another gzip member may follow (gzip files may be concatenated).
                guard try refill() else { return done }
                if stream.pointee.next_in.pointee != 0x1f { return done }  // trailing bytes: ignored, as gzip -d does
                let rc = inflateReset(stream)
                if rc != dsan_z_ok() { throw corrupt(rc) }
                streamEnded = false
            }
            if !(try refill()) { return done }  // input ended mid-stream: the caller reports truncation
            stream.pointee.next_out = (buffer.baseAddress! + done).assumingMemoryBound(to: Bytef.self)
            let want = min(buffer.count - done, Int(UInt32.max))
            stream.pointee.avail_out = uInt(want)
            let rc = inflate(stream, dsan_z_no_flush())
            let got = want - Int(stream.pointee.avail_out)
            done += got
            produced += got
            if rc == dsan_z_stream_end() {
                streamEnded = true
            } else if rc == dsan_z_buf_error() {
                // No progress: only possible with no input left; refill() decides on the next pass.
                if stream.pointee.avail_in != 0 { throw corrupt(rc) }
            } else if rc != dsan_z_ok() {
                throw corrupt(rc)
            }
        }
        return done
    }

    /// Decompresses what follows the voxel data (normally nothing) so that zlib checks the gzip
    /// trailer's CRC-32 and length; a stream that stops before its end marker is truncated.
    func finish() throws {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { scratch.deallocate() }
        while !streamEnded {
            let n = try read(into: scratch)
            if n < scratch.count && !streamEnded {
                throw NIfTIError(file: file, kind: .truncated,
                                 problem: "the gzip stream stops before its end marker and checksum (after \(formatBytes(consumed)) compressed)",
                                 remedy: "the file is truncated; re-download or re-export it")
            }
        }
    }
}

// MARK: - Byte sinks

/// Where the writer puts bytes: a file descriptor, optionally through a gzip deflater.
final class FileSink {
    let path: String
    let fd: Int32
    var stream: UnsafeMutablePointer<z_stream>?
    let outBuffer: UnsafeMutableRawBufferPointer

    init(path: String, gzipLevel: Int32?) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 {
            let e = errno
            throw NIfTIError(file: path, kind: .io, problem: "cannot create: \(String(cString: strerror(e)))",
                             remedy: "check that the folder exists and is writable")
        }
        self.fd = fd
        outBuffer = .allocate(byteCount: 1 << 20, alignment: 16)
        if let level = gzipLevel {
            let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            s.initialize(to: z_stream())
            let rc = dsan_z_deflate_init_gzip(s, level)
            if rc != dsan_z_ok() {
                let text = zlibText(rc, s)
                s.deallocate()
                throw NIfTIError(file: path, kind: .corrupt, problem: "zlib deflateInit2 failed: \(text)",
                                 remedy: "use a compression level from 0 to 9")
            }
            stream = s
        }
    }

    deinit {
        if let s = stream {
            deflateEnd(s)
            s.deinitialize(count: 1)
            s.deallocate()
        }
        outBuffer.deallocate()
        close(fd)
    }

    private func writeAll(_ p: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, p + done, count - done)
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                throw NIfTIError(file: path, kind: .io, problem: "write failed: \(String(cString: strerror(e)))",
                                 remedy: "check free disk space and permissions")
            }
            done += n
        }
    }

    private func deflateStep(_ flush: Int32) throws {
        guard let s = stream else { return }
        repeat {
            s.pointee.next_out = outBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            s.pointee.avail_out = uInt(outBuffer.count)
            let rc = deflate(s, flush)
            if rc != dsan_z_ok() && rc != dsan_z_stream_end() && rc != dsan_z_buf_error() {
                throw NIfTIError(file: path, kind: .corrupt, problem: "zlib deflate failed: \(zlibText(rc, s))",
                                 remedy: "this is a bug in dsan or zlib; report it")
            }
            let have = outBuffer.count - Int(s.pointee.avail_out)
            if have > 0 { try writeAll(outBuffer.baseAddress!, have) }
            if rc == dsan_z_stream_end() { return }
        } while s.pointee.avail_out == 0 || (flush == dsan_z_finish())
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        guard let s = stream else { return try writeAll(bytes.baseAddress!, bytes.count) }
        var offset = 0
        while offset < bytes.count {
            let n = min(bytes.count - offset, Int(UInt32.max))
            s.pointee.next_in = UnsafeMutablePointer(mutating: (bytes.baseAddress! + offset).assumingMemoryBound(to: Bytef.self))
            s.pointee.avail_in = uInt(n)
            while s.pointee.avail_in > 0 { try deflateStep(dsan_z_no_flush()) }
            offset += n
        }
    }

    /// Flushes the deflater, writing the gzip trailer.
    func finish() throws {
        if let s = stream {
            s.pointee.next_in = nil
            s.pointee.avail_in = 0
            try deflateStep(dsan_z_finish())
        }
    }
}
