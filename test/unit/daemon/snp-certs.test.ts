// When the daemon keeps the host's SNP certificates (`snp-certs`): on and off as said; auto with a
// facts file, on hardware that supports SNP, and on the simulated platform only with a key server.
import { describe, expect, it } from 'vitest';
import { DAEMON_DEFAULTS, type DaemonConfig } from '../../../src/config/daemon-config.js';
import { hostCertsWanted } from '../../../src/daemon/snp-certs.js';
import { SIMULATED_HOST_CAPS } from '../../../src/host/simulated.js';
import { hardwareTcbSource } from '../../../src/host/snp-platform.js';
import type { Platform } from '../../../src/platform/select.js';

const snp = { supported: true, reason: 'supported', source: 'test' };
const hardware = (snpSupported: boolean): Platform => ({
  platform: 'hardware',
  binary: 'qemu-system-x86_64',
  binaryArgs: [],
  caps: { ...SIMULATED_HOST_CAPS, sevSnp: snpSupported ? snp : { supported: false, reason: 'not supported: test', source: 'test' } },
  snpIdentity: hardwareTcbSource(),
});
const sim: Platform = {
  platform: 'simulated',
  binary: 'sevsup-sim-qemu',
  binaryArgs: [],
  caps: { ...SIMULATED_HOST_CAPS, sevSnp: snp },
  snpIdentity: { name: 'simulated', read: () => Promise.resolve({ known: false, reason: 'test', source: 'simulated' }) },
};
const config = (over: Partial<DaemonConfig>): DaemonConfig => ({ ...DAEMON_DEFAULTS, ...over });

describe('hostCertsWanted', () => {
  it.each([
    ['on, whatever the host', config({ snpCerts: 'on' }), hardware(false), true],
    ['off, whatever the host', config({ snpCerts: 'off', snpPlatform: '/f' }), hardware(true), false],
    ['auto on SNP hardware', config({}), hardware(true), true],
    ['auto on hardware without SNP', config({}), hardware(false), false],
    ['auto with a facts file', config({ snpPlatform: '/etc/sevsup/snp-platform' }), hardware(false), true],
    ['auto on the sim without a key server', config({}), sim, false],
    ['auto on the sim with a key server', config({ kdsUrl: 'http://127.0.0.1:1' }), sim, true],
  ])('%s', (_name, c, platform, wanted) => {
    expect(hostCertsWanted(c, platform)).toBe(wanted);
  });
});
