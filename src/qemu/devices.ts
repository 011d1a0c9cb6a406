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

/** One image below a qcow2 disk, as vm/disk-chain.ts read and checked it (absolute, symlink-free path). */
export interface BackingLayer {
  readonly file: string;
  readonly format: 'qcow2' | 'raw';
}

/**
 * A disk's `-blockdev` nodes and its device. A qcow2 node always states its backing: the checked
 * chain as read-only nodes `disk<N>-backing<K>` (K = 1 below the disk, deepest defined first, as
 * QEMU resolves a node-name reference at once), or `backing: null`. QEMU then never follows a name
 * in an image header, so a header naming `/etc/shadow` or `nbd:…` opens nothing. Without a chain
 * (`backing` undefined) a qcow2 disk gets `backing: null`: sevsup never lets QEMU choose.
 */
export function diskArgs(disk: DiskSpec, spec: VmSpec, confidential: boolean, backing: readonly BackingLayer[] = []): ArgGroup[] {
  const node = diskNodeName(disk);
  const groups: ArgGroup[] = [];
  // `backing` is a qcow2 option; a raw node opens nothing but its file.
  const below = (depth: number): JsonOption => (depth < backing.length ? { backing: `${node}-backing${depth + 1}` } : { backing: null });
  for (let depth = backing.length - 1; depth >= 0; depth--) {
    const layer = backing[depth]!;
    const name = `${node}-backing${depth + 1}`;
    groups.push(
      [
        '-blockdev',
        formatJsonOption({
          driver: 'file',
          filename: assertQemuSafe(layer.file, { file: spec.source, key: `disk${disk.index} backing` }),
          'node-name': `${name}-file`,
          'read-only': true,
        }),
      ],
      [
        '-blockdev',
        formatJsonOption({
          driver: layer.format,
          file: `${name}-file`,
          'node-name': name,
          'read-only': true,
          ...(layer.format === 'qcow2' ? below(depth + 1) : {}),
        }),
      ],
    );
  }
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
    ...(disk.format === 'qcow2' ? below(0) : {}),
  };
  const device: JsonOption = {
    driver: 'virtio-blk-pci',
    drive: node,
    id: `virtio-disk${disk.index}`,
    ...virtioPciCommon(confidential),
  };
  groups.push(['-blockdev', formatJsonOption(file)], ['-blockdev', formatJsonOption(format)], ['-device', formatJsonOption(device)]);
  return groups;
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
