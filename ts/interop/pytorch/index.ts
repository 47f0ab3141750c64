// PyTorch/SpikingJelly interop: export a model as a Python package, import state_dicts.
export { writePyTorchExport, toTorchTensors, EXPORT_FORMAT } from './export'
export type { PyTorchExport, PyTorchExportOptions } from './export'
export { torchTensorsFor } from './import'
export { torchNameMap, TORCH_SOURCES } from './names'
export type { TorchSource, NameEntry } from './names'
