// Little-endian element bytes, as the file formats store them (.npy, .fvecs, .safetensors).

// MARK: - Reading

/// The floating-point element types the readers widen to `Float`.
enum LittleEndianFloat {
    case float32, float16, bfloat16, float64
}

extension UnsafeRawBufferPointer {
    /// The first `count` elements of `type`, stored little-endian at any alignment, as floats
    /// (binary16 and bfloat16 widen exactly; float64 rounds to nearest).
    ///
    /// - Precondition: the buffer holds at least `count` elements.
    func littleEndianFloats(_ type: LittleEndianFloat, count: Int) -> [Float] {
        switch type {
        case .float32:
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        case .float16:
            (0..<count).map { Float(Float16(bitPattern: UInt16(littleEndian: loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))) }
        case .bfloat16:
            (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
        case .float64:
            (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        }
    }
}

// MARK: - Writing

extension Array where Element == UInt8 {
    /// Appends `value`'s bytes, least significant first.
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends `value`'s IEEE binary32 bit pattern, least significant byte first.
    mutating func appendLittleEndian(_ value: Float) { appendLittleEndian(value.bitPattern) }
}
