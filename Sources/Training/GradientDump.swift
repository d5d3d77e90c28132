import HDF5
import Model

/// `dsan train --dump-gradients FILE`: the all-reduced gradients of one step, one float32
/// dataset per `state_dict` name with its parameter's shape, and the attributes `ranks` and
/// `global_batch` (the tests compare dumps of 1 and R ranks).
enum GradientDump {
    static func write(_ model: ResNet3D, ranks: Int, globalBatch: Int, to path: String) throws {
        let file = try File(creating: path)
        try file.setAttribute("ranks", Int64(ranks))
        try file.setAttribute("global_batch", Int64(globalBatch))
        for p in model.registry.parameters {
            try file.createDataset(p.name, type: .float32, shape: p.gradient.shape).write(p.gradient.array)
        }
    }
}
