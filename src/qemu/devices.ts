// Guest devices on the command line: disks (`-blockdev` pairs + virtio-blk) and NICs (`-netdev` +
// virtio-net), all in QEMU's JSON form so paths and names need no escaping.
// Pure: no I/O. Must not: decide SEV policy; it only follows `confidential` when told.
import type { DiskSpec, NetSpec, VmSpec } from '../config/vm-spec.js';
import { assertQemuSafe, formatJsonOption, type JsonOption } from './escape.js';

/** One option with its arguments, e.g. `['-blockdev', '{…}']`. */
export type ArgGroup = readonly string[];

/**
 * For SEV guests every virtio device gets `iommu_platform` on and legacy virtio off: the device
 * cannot read encrypted guest memory, so it must use the DMA API and the bounce buffers the guest
 * shares. QEMU 7.2 already defaults both when confidential-guest-support is set (hw/core/machine.c
 * "Virtio devices can't count on directly accessing guest memory"); libvirt also writes
 * `"iommu_platform":true` explicitly. Saying it ourselves keeps the argv honest and version-proof.
 */
function virtioPciCommon(confidential: boolean): Record<string, string | boolean> {
  return confidential ? { iommu_platform: true, 'disable-legacy': 'on' } : {};
}

/** Node names: `disk<N>` for the format node the device uses, `disk<N>-file` for the protocol node. */
export function diskNodeName(disk: Pick<DiskSpec, 'index'>): string {
  return `disk${disk.index}`;
}

export function diskArgs(disk: DiskSpec, spec: VmSpec, confidential: boolean): ArgGroup[] {
  const node = diskNodeName(disk);
  const file: JsonOption = {
    driver: 'file',
    filename: assertQemuSafe(disk.file, { file: spec.source, key: `disk${disk.index}` }),
    'node-name': `${node}-file`,
    'read-only': disk.readonly,
  };
  const format: JsonOption = {
    driver: disk.format,
    file: `${node}-file`,
    'node-name': node,
    'read-only': disk.readonly,
  };
  const device: JsonOption = {
    driver: 'virtio-blk-pci',
    drive: node,
    id: `virtio-disk${disk.index}`,
    ...virtioPciCommon(confidential),
  };
  return [
    ['-blockdev', formatJsonOption(file)],
    ['-blockdev', formatJsonOption(format)],
    ['-device', formatJsonOption(device)],
  ];
}

export function netArgs(net: NetSpec, spec: VmSpec, confidential: boolean): ArgGroup[] {
  const id = `net${net.index}`;
  const netdev: JsonOption =
    net.kind === 'user'
      ? { type: 'user', id }
      : {
          type: 'tap',
          id,
          ifname: assertQemuSafe(net.ifname, { file: spec.source, key: `net${net.index} ifname` }),
          // The supervisor never lets QEMU run scripts; the tap device is prepared by the host.
          script: 'no',
          downscript: 'no',
        };
  const device: Record<string, string | boolean> = {
    driver: 'virtio-net-pci',
    netdev: id,
    id: `virtio-net${net.index}`,
  };
  if (net.mac !== undefined) device['mac'] = assertQemuSafe(net.mac, { file: spec.source, key: `net${net.index} mac` });
  Object.assign(device, virtioPciCommon(confidential));
  // An option ROM would run inside the guest's firmware, yet QEMU loads it through fw_cfg and it is
  // never measured; OVMF has its own virtio-net driver.
  if (confidential) device['romfile'] = '';
  return [
    ['-netdev', formatJsonOption(netdev)],
    ['-device', formatJsonOption(device)],
  ];
}
