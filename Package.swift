// swift-tools-version:6.0
// dsan: a distributed data-parallel trainer for the Dual-Sampling Attention Network.
// The layout follows Docs/architecture.md: C bindings (C*) hold only a module map and a shim,
// each Swift module is one concern, and every module has a test target of its own.
import PackageDescription

let package = Package(
    name: "dsan",
    products: [
        .executable(name: "dsan", targets: ["dsan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C bindings: module map + shim header, nothing else.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5-serial",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),

        // Safe Swift wrappers.
        .target(name: "MPI", dependencies: ["CMPI"]),
        .target(name: "HDF5", dependencies: ["CHDF5"]),
        .target(name: "BLAS", dependencies: ["COpenBLAS"]),

        // dsan's memory-bound kernels in C, one build per x86 vector ISA, chosen at start-up from
        // CPUID (Docs/performance.md, "Vector width"). Not a binding: it holds kernels, because
        // Swift has no per-function target attribute.
        .target(name: "VectorKernels"),

        // The numerical engine.
        .target(name: "Tensor", dependencies: ["BLAS"]),
        .target(name: "NN", dependencies: ["Tensor", "BLAS", "VectorKernels"]),

        // Data: NIfTI files, HDF5 shards, preprocessing, synthetic cohort, folds, samplers.
        .target(name: "NIfTI", dependencies: ["CZlib"]),
        .target(name: "Data", dependencies: ["HDF5", "Tensor", "NIfTI"]),

        // The network: ResNet3D-34 with the online attention module, losses, checkpoints.
        .target(name: "Model", dependencies: ["NN", "HDF5"]),

        // Distributed training pieces over MPI: ring all-reduce, gradient buckets.
        .target(name: "Distributed", dependencies: ["MPI", "Tensor"]),

        // Training: configuration, the data-parallel trainer, metrics.
        .target(name: "Training", dependencies: [
            "Model", "Data", "Distributed", "MPI", "NN",
            .product(name: "Yams", package: "Yams"),
        ]),

        // Planning: the α-β model of a step, an epoch and a cross-validation on R ranks (pure arithmetic).
        .target(name: "Planning"),

        // Reports: PNG figures (ROC curves, CT slices with attention maps) and HTML pages.
        .target(name: "Report", dependencies: ["CPNG", "Training", "Data", "NIfTI"], path: "Sources/Report"),

        // Command line.
        .executableTarget(name: "dsan", dependencies: [
            "MPI", "HDF5", "BLAS", "Tensor", "NN", "NIfTI", "Data", "Distributed", "Model", "Training", "Report", "Planning",
            "VectorKernels",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Rank-side half of the multi-rank tests: Tests/MPITests launches it under mpirun.
        .executableTarget(name: "dsan-mpi-checks", dependencies: ["MPI", "Distributed"]),

        // Shared test helpers (finite differences, naive references, tolerances).
        .target(name: "NumericalTesting", dependencies: ["Tensor"], path: "Tests/NumericalTesting"),

        .testTarget(name: "MPITests", dependencies: ["MPI"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "NumericalTesting"]),
        .testTarget(name: "BLASTests", dependencies: ["BLAS"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "NumericalTesting"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor", "NumericalTesting", "VectorKernels"]),
        .testTarget(name: "NIfTITests", dependencies: ["NIfTI", "Tensor"]),
        // Runs the built `dsan` (and `mpirun`): command-line behaviour end to end.
        .testTarget(name: "CLITests", dependencies: ["Data", "NIfTI", "HDF5", "Model", "Training", "NumericalTesting"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Data", "Tensor"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "NN", "NumericalTesting", "HDF5"]),
        .testTarget(name: "DataTests", dependencies: ["Data", "HDF5", "NIfTI", "NumericalTesting"]),
        .testTarget(name: "PlanningTests", dependencies: ["Planning"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Training", "Data", "NIfTI", "NumericalTesting"]),
    ],
    swiftLanguageModes: [.v5]
)
