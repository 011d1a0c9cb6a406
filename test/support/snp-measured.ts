// What an SNP launch measured (attestation/snp-reference-values.ts SnpMeasuredInputs), for tests
// that build SNP launch records (vm/snp-record.ts buildSnpRecord): a firmware-only launch with the
// given launch digest; the firmware's table and metadata are not read by the record.
import type { SnpMeasuredInputs } from '../../src/attestation/snp-reference-values.js';

export function snpMeasured(digest: Buffer, o: { vcpus?: number; firmwareDigest?: Buffer } = {}): SnpMeasuredInputs {
  return {
    digest: {
      digest,
      firmwareDigest: o.firmwareDigest ?? Buffer.alloc(48, 0x22),
      firmware: {
        path: '/fw/OVMF.fd',
        size: 0x10000,
        sha256: 'ab'.repeat(32),
        table: {} as never,
        metadata: { status: 'absent' } as never,
      },
      kernel: null,
      initrd: null,
      cmdline: null,
    },
    vcpus: o.vcpus ?? 1,
    vcpuSignature: 0xa00f11,
    guestFeatures: 1n,
    vmmType: 'QEMU',
  };
}
