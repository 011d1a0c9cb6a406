// Property-based tests for VM config files (fast-check): hostile text never escapes as anything
// but a coded config/property error, and generated valid specs survive format → parse.
// Budget: ~12,000 cases in a few seconds on a shared 2-core machine.
import { qmpAllowProblem } from '../../../src/policy/qmp-policy.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatVmConfig, parseVmConfig } from '../../../src/config/vm-config.js';
import type { DiskSpec, NetSpec, SevSpec, SnpSpec, VmSpec } from '../../../src/config/vm-spec.js';
import { isSupervisorError } from '../../../src/errors.js';

const FILE = '/vms/t.conf';

// --- hostile text ----------------------------------------------------------------------------

const KEYS = [
  'name',
  'memory',
  'cores',
  'cpu',
  'bios',
  'firmware',
  'kernel',
  'initrd',
  'cmdline',
  'disk0',
  'disk9',
  'disk10',
  'net0',
  'net1',
  'launch',
  'attest',
  'attest-url',
  'attest-token-file',
  'hold-timeout',
  'autostart',
  'serial',
  'qmp-allow',
  'qmp-deny',
  'amd_sev',
  'amd-sev',
  'Memory',
  'memroy',
  '__proto__',
  'constructor',
  'toString',
  'a',
  '0',
  '#memory',
  ' ',
];
const VALUES = [
  't',
  'other',
  '512',
  '0',
  '-1',
  '1e3',
  '99999999999999999999',
  'EPYC-v3',
  'host,+x',
  'ovmf',
  'seabios',
  'hold',
  'none',
  'relay',
  'https://owner.example/attest',
  'file',
  'yes',
  'OFF',
  'std',
  'es',
  'snp',
  'type=es,no-debug=1,no-key-sharing=1',
  'es,nodbg=1,kernel-hashes=1',
  'std,reduced-phys-bios=1',
  'std,allow-smt=1',
  'snp,allow-smt=0,no-debug=1',
  'type=snp,abi=1.55,single-socket=1',
  'snp,host-data=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  'snp,id-block=a,id-auth=b,author-key=1',
  'snp,vcek=0',
  'snp,no-key-sharing=1',
  'snp,migrate-ma=1',
  'snp,abi=256.0',
  'es,host-data-file=x',
  'std,cbitpos=47,reduced-phys-bits=1',
  'file=a.raw,format=raw,readonly=1',
  'x.qcow2',
  'x.vmdk',
  'user',
  'tap,ifname=t0',
  'user,mac=52:54:00:00:00:01',
  'user,mac=01:00:00:00:00:00',
  'dh-cert=a,session=b',
  '/abs/path',
  '../rel',
  'a # b',
  'a,b,,c',
  '=',
  ',',
  '==,==',
  '\u0000',
  '\u2028',
  '\t',
  '"\'',
];
const key = fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...KEYS) }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) });
const value = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...VALUES) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 3, arbitrary: fc.array(fc.constantFrom(...VALUES), { maxLength: 3 }).map((parts) => parts.join(',')) },
);
/** Mostly well-formed lines, so most cases get past the line grammar into the key rules. */
const weighted = <T>(...pairs: [T, number][]): fc.Arbitrary<T> =>
  fc.oneof(...pairs.map(([v, weight]) => ({ weight, arbitrary: fc.constant(v) })));
const prefix = weighted<string>(['', 12], ['#', 2], [' ', 1], ['\t', 1], ['\ufeff', 1]);
const separator = weighted<string>([': ', 12], [':', 3], [' : ', 1], [' ', 1], ['=', 1]);
const line = fc.tuple(prefix, key, separator, value).map((parts) => parts.join(''));
const eol = weighted<string>(['\n', 8], ['\r\n', 3], ['\r', 1]);
const hostileText = fc.tuple(fc.array(line, { maxLength: 6 }), eol).map(([lines, end]) => lines.join(end));

// --- valid specs ---------------------------------------------------------------------------

const HEX = /^[0-9a-f]{64}$/;
/** A path segment that path.resolve keeps and a trimmed line keeps: no '.'/'..', no edge spaces. */
const segment = fc.stringMatching(/^[A-Za-z0-9_]([A-Za-z0-9._ =#-]{0,8}[A-Za-z0-9_])?$/);
const absPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => `/${parts.join('/')}`);
/** Free text for the cmdline: anything a single trimmed line without control characters holds. */
const cmdline = fc
  .string({ minLength: 1, maxLength: 40, unit: 'binary' })
  .filter((s) => s === s.trim() && !/[\u0000-\u0008\u000a-\u001f\u007f\u2028\u2029]/.test(s));
const macOctets = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 });
const mac = macOctets.map((octets) => octets.map((o, i) => (i === 0 ? o & 0xfe : o).toString(16).padStart(2, '0')).join(':'));
const qmpName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,15}$/);

const legacySevArb: fc.Arbitrary<SevSpec> = fc
  .record({
    type: fc.constantFrom('std' as const, 'es' as const),
    nodbg: fc.boolean(),
    noks: fc.boolean(),
    kernelHashes: fc.boolean(),
    cbitpos: fc.option(fc.integer({ min: 32, max: 63 }), { nil: undefined }),
    reducedPhysBits: fc.option(fc.integer({ min: 1, max: 63 }), { nil: undefined }),
    key: fc.constantFrom('amd_sev' as const, 'amd-sev' as const),
  })
  .map(({ cbitpos, reducedPhysBits, ...rest }) => ({
    ...rest,
    ...(cbitpos === undefined ? {} : { cbitpos }),
    ...(reducedPhysBits === undefined ? {} : { reducedPhysBits }),
  }));

const bytesB64 = (n: number): fc.Arbitrary<string> =>
  fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('base64'));

const snpArb: fc.Arbitrary<SnpSpec> = fc
  .record({
    kernelHashes: fc.boolean(),
    cbitpos: fc.option(fc.integer({ min: 32, max: 63 }), { nil: undefined }),
    reducedPhysBits: fc.option(fc.integer({ min: 1, max: 63 }), { nil: undefined }),
    key: fc.constantFrom('amd_sev' as const, 'amd-sev' as const),
    flags: fc.array(fc.boolean(), { minLength: 11, maxLength: 11 }),
    abi: fc.option(fc.record({ major: fc.integer({ min: 0, max: 255 }), minor: fc.integer({ min: 0, max: 255 }) }), { nil: undefined }),
    hostData: fc.option(
      fc.oneof(
        bytesB64(32).map((base64) => ({ kind: 'value' as const, base64 })),
        absPath.map((path) => ({ kind: 'file' as const, path })),
      ),
      { nil: undefined },
    ),
    id: fc.option(fc.tuple(absPath, absPath), { nil: undefined }),
    gvw: fc.option(bytesB64(16), { nil: undefined }),
  })
  .map((r): SnpSpec => {
    const [nodbg, allowSmt, singleSocket, cxlAllow, aes256Xts, raplDis, ciphertextHiding, pageSwapDisable, authorKey, vcek] =
      r.flags as boolean[];
    return {
      type: 'snp',
      key: r.key,
      kernelHashes: r.kernelHashes,
      ...(r.cbitpos === undefined ? {} : { cbitpos: r.cbitpos }),
      ...(r.reducedPhysBits === undefined ? {} : { reducedPhysBits: r.reducedPhysBits }),
      nodbg: nodbg === true,
      allowSmt: allowSmt === true,
      singleSocket: singleSocket === true,
      cxlAllow: cxlAllow === true,
      aes256Xts: aes256Xts === true,
      raplDis: raplDis === true,
      ciphertextHiding: ciphertextHiding === true,
      pageSwapDisable: pageSwapDisable === true,
      ...(r.abi === undefined ? {} : { abi: r.abi }),
      ...(r.hostData === undefined ? {} : { hostData: r.hostData }),
      ...(r.id === undefined ? {} : { idBlock: r.id[0], idAuth: r.id[1] }),
      authorKey: r.id !== undefined && authorKey === true,
      vcek: vcek === true,
      ...(r.gvw === undefined ? {} : { guestVisibleWorkarounds: r.gvw }),
    };
  });

const sevArb: fc.Arbitrary<SevSpec> = fc.oneof(legacySevArb, snpArb);

const disksArb: fc.Arbitrary<DiskSpec[]> = fc
  .uniqueArray(
    fc.record({
      index: fc.integer({ min: 0, max: 9 }),
      file: absPath,
      format: fc.constantFrom('qcow2' as const, 'raw' as const),
      readonly: fc.boolean(),
    }),
    { maxLength: 3, selector: (d) => d.index },
  )
  .map((disks) => disks.filter((d, i) => disks.findIndex((o) => o.file === d.file) === i).sort((a, b) => a.index - b.index));

const netsArb: fc.Arbitrary<NetSpec[]> = fc
  .uniqueArray(
    fc.record({
      index: fc.integer({ min: 0, max: 9 }),
      tap: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/), { nil: undefined }),
      mac: fc.option(mac, { nil: undefined }),
    }),
    { maxLength: 3, selector: (n) => n.index },
  )
  .map((nets) =>
    nets
      .filter(
        (n, i) =>
          (n.mac === undefined || nets.findIndex((o) => o.mac === n.mac) === i) &&
          (n.tap === undefined || nets.findIndex((o) => o.tap === n.tap) === i),
      )
      .sort((a, b) => a.index - b.index)
      .map((n): NetSpec => {
        const macPart = n.mac === undefined ? {} : { mac: n.mac };
        return n.tap === undefined
          ? { index: n.index, kind: 'user', ...macPart }
          : { index: n.index, kind: 'tap', ifname: n.tap, ...macPart };
      }),
  );

const specArb: fc.Arbitrary<VmSpec> = fc
  .record({
    name: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/),
    memory: fc.integer({ min: 32, max: 4 * 1024 * 1024 }),
    cores: fc.integer({ min: 1, max: 256 }),
    cpu: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
    bios: fc.constantFrom('ovmf' as const, 'seabios' as const),
    firmware: fc.option(fc.record({ path: absPath, sha256: fc.option(fc.stringMatching(HEX), { nil: undefined }) }), { nil: undefined }),
    kernel: fc.option(absPath, { nil: undefined }),
    initrd: fc.option(absPath, { nil: undefined }),
    cmdline: fc.option(cmdline, { nil: undefined }),
    disks: disksArb,
    nets: netsArb,
    launch: fc.option(fc.record({ dhCert: absPath, session: absPath }), { nil: undefined }),
    hold: fc.boolean(),
    holdTimeout: fc.option(fc.integer({ min: 1, max: 86400 }), { nil: undefined }),
    autostart: fc.boolean(),
    serial: fc.constantFrom('none' as const, 'file' as const),
    sev: fc.option(sevArb, { nil: undefined }),
    qemu: fc.option(fc.oneof(absPath, fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,20}$/)), { nil: undefined }),
    qmp: fc.uniqueArray(qmpName, { maxLength: 6 }),
    split: fc.nat(),
  })
  .map((r): VmSpec => {
    // Respect the rules that combine keys, so every generated spec is a valid one.
    const sev = r.sev !== undefined && r.kernel === undefined ? { ...r.sev, kernelHashes: false } : r.sev;
    const hold = r.hold && sev !== undefined;
    const cut = r.qmp.length === 0 ? 0 : r.split % (r.qmp.length + 1);
    const fw = r.firmware;
    return {
      ...(r.qemu === undefined ? {} : { qemu: r.qemu }),
      name: r.name,
      source: `/vms/${r.name}.conf`,
      memory: r.memory,
      cores: r.cores,
      cpu: r.cpu,
      bios: r.bios,
      ...(fw === undefined ? {} : { firmware: { path: fw.path, ...(fw.sha256 === undefined ? {} : { sha256: fw.sha256 }) } }),
      ...(r.kernel === undefined ? {} : { kernel: r.kernel }),
      ...(r.kernel === undefined || r.initrd === undefined ? {} : { initrd: r.initrd }),
      ...(r.kernel === undefined || r.cmdline === undefined ? {} : { cmdline: r.cmdline }),
      disks: r.disks,
      nets: r.nets,
      ...(sev === undefined || sev.type === 'snp' || r.launch === undefined ? {} : { launch: r.launch }),
      attest: hold ? 'hold' : 'none',
      ...(hold && r.holdTimeout !== undefined ? { holdTimeout: r.holdTimeout } : {}),
      autostart: r.autostart,
      serial: r.serial,
      ...(sev === undefined ? {} : { sev }),
      // qmp-allow cannot name a final refusal (memory family, tracing, ...): the config is refused then.
      qmpAllow: r.qmp.slice(0, cut).filter((name) => qmpAllowProblem(name) === null),
      qmpDeny: r.qmp.slice(cut),
    };
  });

describe('parseVmConfig, property-based', () => {
  it('any text either parses (and then round-trips) or throws a coded config/property error naming the file', () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        let spec: VmSpec;
        try {
          spec = parseVmConfig(text, FILE);
        } catch (error: unknown) {
          if (!isSupervisorError(error)) throw error;
          expect(error.code).toMatch(/^SUP_ERR_(CONFIG|PROPERTY)_/);
          expect(error.message.startsWith(`${FILE}:`)).toBe(true);
          expect(error.details['file']).toBe(FILE);
          return;
        }
        expect(parseVmConfig(formatVmConfig(spec), FILE)).toEqual(spec);
      }),
      { numRuns: 10_000 },
    );
  });

  it('generated valid specs survive format → parse', () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        expect(parseVmConfig(formatVmConfig(spec), spec.source)).toEqual(spec);
      }),
      { numRuns: 1500 },
    );
  });
});
