import SheafFormats

/// Named tensors to and from safetensors files (F32 on write; F32, F16, BF16 or F64 on read).
public enum Checkpoint {
    /// Writes `tensors` (name → tensor, in the given order) to `path`, replacing it atomically.
    public static func save(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to path: String) throws {
        try SafeTensors.write(tensors.map { ($0.name, $0.tensor.shape, $0.tensor.values) }, metadata: metadata, to: path)
    }

    /// Reads tensor `name` of `file`, which must have `shape`, as a tensor (a parameter when
    /// `trainable`).
    /// - Throws: `FormatError.missingTensor`, `.tensorShapeMismatch`, `.unsupportedDType`.
    public static func tensor(_ file: SafeTensors, _ name: String, shape: [Int], trainable: Bool = false) throws -> Tensor {
        let (_, values) = try file.floats(name, shape: shape)
        return Tensor(shape: shape, values: values, requiresGrad: trainable)
    }

    /// Loads every tensor of `targets` from `path`: all are checked (present, same shape, a float
    /// dtype) before any is changed, so a bad file leaves the targets as they were.
    public static func load(_ targets: [(name: String, tensor: Tensor)], from path: String) throws {
        let file = try SafeTensors.read(path: path)
        let values = try targets.map { try file.floats($0.name, shape: $0.tensor.shape).values }
        for (t, v) in zip(targets, values) { t.tensor.assign(v) }
    }
}
