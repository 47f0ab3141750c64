// PyTorch/SpikingJelly interop: export a model as a Python package, import state_dicts.

export type { PyTorchExport, PyTorchExportOptions } from './export'
export { EXPORT_FORMAT, toTorchTensors, writePyTorchExport } from './export'
export { torchTensorsFor } from './import'
export type { NameEntry, TorchSource } from './names'
export { TORCH_SOURCES, torchNameMap } from './names'
