export type { FirecrackerVmmOptions } from "./firecracker-vmm.js";
export { FirecrackerVmm } from "./firecracker-vmm.js";
export type { MicrovmDriverOptions } from "./microvm-driver.js";
export { FIRST_VM_UID, MicrovmDriver } from "./microvm-driver.js";
export type { QemuAccel, QemuVmmOptions } from "./qemu-vmm.js";
export { QemuVmm } from "./qemu-vmm.js";
export type { MicrovmDriverSettings } from "./settings.js";
export { microvmDriverSettings } from "./settings.js";
export type { RunningVm, VmConfig, VmDisk, Vmm } from "./vmm.js";
