// Tests for VM config files: every key, defaults, path resolution, both SEV spellings, every
// error path with its exact message, loading from real files, and the shipped examples.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatVmConfig, loadVmConfig, MAX_VM_CONFIG_BYTES, parseVmConfig } from '../../../src/config/vm-config.js';
import type { VmSpec } from '../../../src/config/vm-spec.js';
import { catchSupervisorError, catchSupervisorErrorAsync } from '../../support/catch-error.js';
import { DEFAULT_VM_DIR } from '../../../src/paths.js';

const DIR = '/srv/vms';
const FILE = `${DIR}/web.conf`;
const KNOWN_KEYS =
  'name, memory, cores, cpu, bios, firmware, kernel, initrd, cmdline, disk0…disk9, net0…net9, launch, attest, ' +
  'attest-url, attest-ca, attest-cert, attest-key, attest-token-file, attest-timeout, hold-timeout, autostart, serial, qmp-allow, qmp-deny, qemu, amd_sev (or amd-sev)';
const BOOL_ALLOWED = '1, 0, yes, no, on, off, true, false';

const DEFAULTS: VmSpec = {
  name: 'web',
  source: FILE,
  memory: 1024,
  cores: 1,
  cpu: 'EPYC-v3',
  bios: 'seabios',
  disks: [],
  nets: [],
  attest: 'none',
  autostart: false,
  serial: 'file',
  qmpAllow: [],
  qmpDeny: [],
};

const parse = (text: string, file = FILE): VmSpec => parseVmConfig(text, file);

describe('parseVmConfig: values', () => {
  it.each<[string, string, Partial<VmSpec>]>([
    ['an empty file gives every default', '', {}],
    ['comments only', '# nothing\n\n', {}],
    ['name agreeing with the file name', 'name: web', {}],
    ['memory and cores', 'memory: 512\ncores: 4', { memory: 512, cores: 4 }],
    ['memory limits', 'memory: 32\ncores: 256', { memory: 32, cores: 256 }],
    ['cpu model', 'cpu: EPYC-Milan-v2', { cpu: 'EPYC-Milan-v2' }],
    [
      'bios seabios explicitly with SEV (argv.ts refuses it, not the parser)',
      'bios: seabios\namd_sev: std',
      { bios: 'seabios', sev: { type: 'std', nodbg: false, noks: false, kernelHashes: false, key: 'amd_sev' } },
    ],
    [
      'bios defaults to ovmf with SEV',
      'amd_sev: es',
      { bios: 'ovmf', sev: { type: 'es', nodbg: false, noks: false, kernelHashes: false, key: 'amd_sev' } },
    ],
    ['bios ovmf without SEV', 'bios: ovmf', { bios: 'ovmf' }],
    ['relative firmware path', 'firmware: fw/OVMF.fd', { firmware: { path: `${DIR}/fw/OVMF.fd` } }],
    [
      'pinned firmware, upper-case digest lower-cased',
      `firmware: file=/fw/OVMF.fd,sha256=${'AB'.repeat(32)}`,
      { firmware: { path: '/fw/OVMF.fd', sha256: 'ab'.repeat(32) } },
    ],
    ['firmware path with = needs file=', 'firmware: file=../a=b.fd', { firmware: { path: '/srv/a=b.fd' } }],
    [
      'kernel, initrd, cmdline with commas, quotes, # and spaces',
      'kernel: ../k/vmlinuz\ninitrd: /b/initrd.img\n' + `cmdline: console=ttyS0,115200 root="LABEL=a b" panic=-1 # not a comment`,
      { kernel: '/srv/k/vmlinuz', initrd: '/b/initrd.img', cmdline: 'console=ttyS0,115200 root="LABEL=a b" panic=-1 # not a comment' },
    ],
    [
      'disks in index order, format from extension or given',
      'disk3: file=d.raw,readonly=1\ndisk0: root.qcow2\n' + 'disk1: file=/x/data,format=raw\ndisk2: scratch.IMG',
      {
        disks: [
          { index: 0, file: `${DIR}/root.qcow2`, format: 'qcow2', readonly: false },
          { index: 1, file: '/x/data', format: 'raw', readonly: false },
          { index: 2, file: `${DIR}/scratch.IMG`, format: 'raw', readonly: false },
          { index: 3, file: `${DIR}/d.raw`, format: 'raw', readonly: true },
        ],
      },
    ],
    [
      'format overrides the extension',
      'disk0: file=a.qcow2,format=raw',
      { disks: [{ index: 0, file: `${DIR}/a.qcow2`, format: 'raw', readonly: false }] },
    ],
    [
      'nets: user, tap, mac lower-cased',
      'net1: tap,ifname=tap-web0,mac=52:54:00:AB:CD:EF\nnet0: user',
      {
        nets: [
          { index: 0, kind: 'user' },
          { index: 1, kind: 'tap', ifname: 'tap-web0', mac: '52:54:00:ab:cd:ef' },
        ],
      },
    ],
    [
      'net with type= spelled out',
      'net0: type=user,mac=02:00:00:00:00:01',
      { nets: [{ index: 0, kind: 'user', mac: '02:00:00:00:00:01' }] },
    ],
    [
      'launch session files, relative',
      'amd_sev: std\nlaunch: dh-cert=owner/godh.b64,session=/o/session.b64',
      {
        bios: 'ovmf',
        sev: { type: 'std', nodbg: false, noks: false, kernelHashes: false, key: 'amd_sev' },
        launch: { dhCert: `${DIR}/owner/godh.b64`, session: '/o/session.b64' },
      },
    ],
    [
      'attest hold with a timeout',
      'amd_sev: std\nattest: hold\nhold-timeout: 600',
      {
        bios: 'ovmf',
        sev: { type: 'std', nodbg: false, noks: false, kernelHashes: false, key: 'amd_sev' },
        attest: 'hold',
        holdTimeout: 600,
      },
    ],
    ['autostart yes', 'autostart: yes', { autostart: true }],
    ['autostart ON', 'autostart: ON', { autostart: true }],
    ['autostart false', 'autostart: false', { autostart: false }],
    ['serial none', 'serial: none', { serial: 'none' }],
    [
      'qmp lists, spaces around names',
      'qmp-allow: query-status, x-query-foo ,__org.example_cmd\nqmp-deny: device_add',
      {
        qmpAllow: ['query-status', 'x-query-foo', '__org.example_cmd'],
        qmpDeny: ['device_add'],
      },
    ],
    [
      'SEV: the Proxmox spelling',
      'amd-sev: type=es,no-debug=1,no-key-sharing=1',
      {
        bios: 'ovmf',
        sev: { type: 'es', nodbg: true, noks: true, kernelHashes: false, key: 'amd-sev' },
      },
    ],
    [
      'SEV: overrides',
      'amd_sev: std,cbitpos=51,reduced-phys-bits=6',
      {
        bios: 'ovmf',
        sev: { type: 'std', nodbg: false, noks: false, kernelHashes: false, cbitpos: 51, reducedPhysBits: 6, key: 'amd_sev' },
      },
    ],
    [
      'SEV: kernel-hashes with a kernel',
      'kernel: /k\namd_sev: es,kernel-hashes=on',
      {
        bios: 'ovmf',
        kernel: '/k',
        sev: { type: 'es', nodbg: false, noks: false, kernelHashes: true, key: 'amd_sev' },
      },
    ],
    ['CRLF file', 'memory: 256\r\ncores: 2\r\n', { memory: 256, cores: 2 }],
  ])('%s', (_name, text, expected) => {
    expect(parse(text)).toEqual({ ...DEFAULTS, ...expected });
  });

  it('takes the name from the file name and resolves a relative file against the working directory', () => {
    const spec = parseVmConfig('memory: 64', 'rel/dir/db-1.conf');
    expect(spec.name).toBe('db-1');
    expect(spec.source).toBe(path.resolve('rel/dir/db-1.conf'));
  });

  it('takes the name from a name key when the file is not a .conf', () => {
    expect(parseVmConfig('name: Alpha.2', '/tmp/whatever.txt').name).toBe('Alpha.2');
  });
});

describe('parseVmConfig: errors', () => {
  const at = (line: number, key: string, problem: string): string => `${FILE}:${line}: ${key}: ${problem}`;
  it.each<[string, string, string, string, number | undefined, string | undefined]>([
    // keys
    ['unknown key', 'memory: 1\nfoo: 1', 'SUP_ERR_CONFIG_UNKNOWN_KEY', at(2, 'foo', `unknown key; known keys: ${KNOWN_KEYS}`), 2, 'foo'],
    [
      'misspelt key',
      'memroy: 512',
      'SUP_ERR_CONFIG_UNKNOWN_KEY',
      at(1, 'memroy', `unknown key (did you mean 'memory'?); known keys: ${KNOWN_KEYS}`),
      1,
      'memroy',
    ],
    [
      'upper-case key',
      'Memory: 512',
      'SUP_ERR_CONFIG_UNKNOWN_KEY',
      at(1, 'Memory', `unknown key (did you mean 'memory'?); known keys: ${KNOWN_KEYS}`),
      1,
      'Memory',
    ],
    ['disk10', 'disk10: a.raw', 'SUP_ERR_CONFIG_UNKNOWN_KEY', at(1, 'disk10', 'unknown key; use disk0…disk9'), 1, 'disk10'],
    ['net007', 'net007: user', 'SUP_ERR_CONFIG_UNKNOWN_KEY', at(1, 'net007', 'unknown key; use net0…net9'), 1, 'net007'],
    [
      'snapshot-era key',
      'vmstate: 1',
      'SUP_ERR_CONFIG_UNKNOWN_KEY',
      at(1, 'vmstate', `unknown key; known keys: ${KNOWN_KEYS}`),
      1,
      'vmstate',
    ],
    [
      'duplicate key',
      'cores: 1\ncores: 2',
      'SUP_ERR_CONFIG_DUPLICATE_KEY',
      `${FILE}:2: duplicate key 'cores' (first set at line 1); keep one of them`,
      2,
      'cores',
    ],
    [
      'both SEV spellings',
      'amd_sev: std\nmemory: 64\namd-sev: std',
      'SUP_ERR_CONFIG_CONFLICT',
      at(3, 'amd-sev', 'conflicts with amd_sev at line 1; amd_sev and amd-sev are two spellings of one key, keep one line'),
      3,
      'amd-sev',
    ],
    [
      'syntax',
      'memory 512',
      'SUP_ERR_CONFIG_SYNTAX',
      `${FILE}:1: line 'memory 512' is not "key: value" (comment lines start with '#')`,
      1,
      undefined,
    ],
    // name
    [
      'name with a slash',
      'name: a/b',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'name', "invalid value 'a/b'; allowed: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"),
      1,
      'name',
    ],
    [
      'name starting with a dot',
      'name: .web',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'name', "invalid value '.web'; allowed: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"),
      1,
      'name',
    ],
    [
      'name too long',
      `name: ${'a'.repeat(64)}`,
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        1,
        'name',
        `invalid value '${'a'.repeat(60)}…'; allowed: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      ),
      1,
      'name',
    ],
    [
      'name disagreeing with the file',
      'name: db',
      'SUP_ERR_CONFIG_CONFLICT',
      at(1, 'name', "'db' does not match the file name 'web.conf'; rename one so they agree"),
      1,
      'name',
    ],
    // numbers and enums
    [
      'memory not a number',
      'memory: 1G',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'memory', "invalid value '1G'; allowed: an integer number of MiB from 32 to 4194304"),
      1,
      'memory',
    ],
    [
      'memory too small',
      'memory: 31',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'memory', "invalid value '31'; allowed: an integer number of MiB from 32 to 4194304"),
      1,
      'memory',
    ],
    [
      'memory too large',
      'memory: 4194305',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'memory', "invalid value '4194305'; allowed: an integer number of MiB from 32 to 4194304"),
      1,
      'memory',
    ],
    [
      'cores zero',
      'cores: 0',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'cores', "invalid value '0'; allowed: an integer number of vCPUs from 1 to 256"),
      1,
      'cores',
    ],
    [
      'cores fractional',
      'cores: 1.5',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'cores', "invalid value '1.5'; allowed: an integer number of vCPUs from 1 to 256"),
      1,
      'cores',
    ],
    [
      'cpu with flags',
      'cpu: EPYC,+sev',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'cpu', "invalid value 'EPYC,+sev'; allowed: a QEMU CPU model name such as EPYC-v3 (letters, digits, '.', '_', '-')"),
      1,
      'cpu',
    ],
    [
      'SEV line with a trailing comment, as DESIGN.md sketches it',
      'amd_sev: type=std,nodbg=1      # seed',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(
        1,
        'amd_sev',
        `property 'nodbg' has invalid value '1      # seed' ('#' starts a comment only at the beginning of a line); allowed: ${BOOL_ALLOWED}`,
      ),
      1,
      'amd_sev',
    ],
    ['bios unknown', 'bios: uefi', 'SUP_ERR_CONFIG_BAD_VALUE', at(1, 'bios', "invalid value 'uefi'; allowed: ovmf, seabios"), 1, 'bios'],
    [
      'attest unknown',
      'attest: wait',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'attest', "invalid value 'wait'; allowed: hold, none, relay"),
      1,
      'attest',
    ],
    [
      'serial unknown',
      'serial: socket',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'serial', "invalid value 'socket'; allowed: none, file"),
      1,
      'serial',
    ],
    [
      'autostart unknown',
      'autostart: maybe',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'autostart', `invalid value 'maybe'; allowed: ${BOOL_ALLOWED}`),
      1,
      'autostart',
    ],
    [
      'autostart with a trailing comment',
      'autostart: 1 # on boot',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'autostart', `invalid value '1 # on boot' ('#' starts a comment only at the beginning of a line); allowed: ${BOOL_ALLOWED}`),
      1,
      'autostart',
    ],
    [
      'hold-timeout out of range',
      'amd_sev: std\nattest: hold\nhold-timeout: 86401',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(3, 'hold-timeout', "invalid value '86401'; allowed: an integer number of seconds from 1 to 86400"),
      3,
      'hold-timeout',
    ],
    // qmp lists
    [
      'qmp name with a space',
      'qmp-allow: query status',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        1,
        'qmp-allow',
        "invalid command name 'query status'; allowed: a comma-separated list of QMP command names (letters, digits, '_', '.', '-')",
      ),
      1,
      'qmp-allow',
    ],
    [
      'qmp empty item',
      'qmp-deny: a,,b',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'qmp-deny', "empty command name; allowed: a comma-separated list of QMP command names (letters, digits, '_', '.', '-')"),
      1,
      'qmp-deny',
    ],
    ['qmp repeated', 'qmp-deny: a,b,a', 'SUP_ERR_CONFIG_BAD_VALUE', at(1, 'qmp-deny', "'a' is listed twice; list it once"), 1, 'qmp-deny'],
    [
      'qmp-allow of a memory-family command',
      'qmp-allow: query-status,dump-guest-memory',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        1,
        'qmp-allow',
        'dump-guest-memory is refused by sevsup (memory-dump) and cannot be allowed: writes guest memory to a file; remove it from qmp-allow',
      ),
      1,
      'qmp-allow',
    ],
    [
      'qmp-allow of getfd',
      'qmp-allow: getfd',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        1,
        'qmp-allow',
        "getfd is refused by sevsup (fd-passing) and cannot be allowed: the proxy never passes file descriptors (SCM_RIGHTS), and the fds and fd sets QEMU holds are sevsup's own; give QEMU files through the VM config; remove it from qmp-allow",
      ),
      1,
      'qmp-allow',
    ],
    [
      'qmp allowed and denied',
      'qmp-allow: a,b\nqmp-deny: c,b',
      'SUP_ERR_CONFIG_CONFLICT',
      at(2, 'qmp-deny', "'b' is also in qmp-allow at line 1; list it in one of them"),
      2,
      'qmp-deny',
    ],
    // property-string keys
    [
      'firmware digest too short',
      'firmware: file=/f,sha256=abc',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(1, 'firmware', "property 'sha256' has invalid value 'abc'; allowed: a sha256 digest of 64 hex digits"),
      1,
      'firmware',
    ],
    [
      'firmware bare path with =',
      'firmware: /a=b.fd',
      'SUP_ERR_PROPERTY_UNKNOWN',
      at(1, 'firmware', "unknown property '/a'; allowed: file (default), sha256"),
      1,
      'firmware',
    ],
    [
      'disk of unknown format',
      'disk0: /x/y.vmdk',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'disk0', "cannot tell the format of '/x/y.vmdk' from its extension; add format=qcow2 or format=raw"),
      1,
      'disk0',
    ],
    [
      'disk format unknown',
      'disk0: file=a,format=vmdk',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(1, 'disk0', "property 'format' has invalid value 'vmdk'; allowed: qcow2, raw"),
      1,
      'disk0',
    ],
    [
      'disk without file',
      'disk0: format=raw',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'disk0', "missing property 'file' (allowed: a file path without commas)"),
      1,
      'disk0',
    ],
    [
      'two disks on one file',
      'disk0: a.raw\ndisk1: file=./a.raw',
      'SUP_ERR_CONFIG_CONFLICT',
      at(2, 'disk1', "file '/srv/vms/a.raw' is already used by disk0; give each its own"),
      2,
      'disk1',
    ],
    [
      'net kind unknown',
      'net0: bridge',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(1, 'net0', "property 'type' has invalid value 'bridge'; allowed: user, tap"),
      1,
      'net0',
    ],
    [
      'tap without ifname',
      'net0: tap',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'net0', 'type tap needs ifname=NAME (the host tap device)'),
      1,
      'net0',
    ],
    [
      'user with ifname',
      'net0: user,ifname=tap0',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'net0', "property 'ifname' applies only to type tap; remove it or use tap"),
      1,
      'net0',
    ],
    [
      'ifname too long',
      'net0: tap,ifname=abcdefghijklmnop',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(
        1,
        'net0',
        "property 'ifname' has invalid value 'abcdefghijklmnop'; allowed: an interface name of 1 to 15 letters, digits, '.', '_' or '-'",
      ),
      1,
      'net0',
    ],
    [
      'malformed mac',
      'net0: user,mac=52:54:00:12:34',
      'SUP_ERR_PROPERTY_BAD_VALUE',
      at(1, 'net0', "property 'mac' has invalid value '52:54:00:12:34'; allowed: a MAC address such as 52:54:00:12:34:56"),
      1,
      'net0',
    ],
    [
      'multicast mac',
      'net0: user,mac=01:00:5e:00:00:01',
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(1, 'net0', 'mac 01:00:5e:00:00:01 is a multicast address; use a unicast one (even first octet), e.g. 52:54:00:12:34:56'),
      1,
      'net0',
    ],
    [
      'two nets with one mac',
      'net0: user,mac=52:54:00:00:00:01\nnet1: tap,ifname=t1,mac=52:54:00:00:00:01',
      'SUP_ERR_CONFIG_CONFLICT',
      at(2, 'net1', 'mac 52:54:00:00:00:01 is already used by net0; give each its own'),
      2,
      'net1',
    ],
    [
      'two nets on one tap',
      'net0: tap,ifname=t1\nnet1: tap,ifname=t1',
      'SUP_ERR_CONFIG_CONFLICT',
      at(2, 'net1', 'ifname t1 is already used by net0; give each its own'),
      2,
      'net1',
    ],
    [
      'launch without session',
      'amd_sev: std\nlaunch: dh-cert=/a',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(2, 'launch', "missing property 'session' (allowed: a file path without commas)"),
      2,
      'launch',
    ],
    [
      'launch with a bare path',
      'amd_sev: std\nlaunch: /a',
      'SUP_ERR_PROPERTY_SYNTAX',
      at(2, 'launch', "'/a' has no property name; write NAME=VALUE (allowed: dh-cert, session)"),
      2,
      'launch',
    ],
    // SEV line
    [
      'SEV-ES with an SNP property',
      'amd-sev: type=es,allow-smt=1',
      'SUP_ERR_CONFIG_CONFLICT',
      at(1, 'amd-sev', "property 'allow-smt' applies only to type=snp (AMD SEV-SNP), not type=es; remove it or use type=snp"),
      1,
      'amd-sev',
    ],
    [
      "the seed's reduced-phys-bios typo",
      'amd_sev: std,cbitpos=47,reduced-phys-bios=1',
      'SUP_ERR_PROPERTY_UNKNOWN',
      at(
        1,
        'amd_sev',
        "unknown property 'reduced-phys-bios' (did you mean 'reduced-phys-bits'?); allowed: type (default), nodbg (or no-debug), noks (or no-key-sharing), kernel-hashes, cbitpos, reduced-phys-bits, allow-smt, single-socket, cxl-allow, aes-256-xts, rapl-dis, ciphertext-hiding, page-swap-disable, abi, host-data, host-data-file, id-block, id-auth, author-key, vcek, guest-visible-workarounds",
      ),
      1,
      'amd_sev',
    ],
    [
      'SEV without type',
      'amd_sev: nodbg=1',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'amd_sev', "missing property 'type' (allowed: std, es, snp)"),
      1,
      'amd_sev',
    ],
    [
      'SEV nodbg twice under two spellings',
      'amd_sev: std,nodbg=1,no-debug=1',
      'SUP_ERR_PROPERTY_DUPLICATE',
      at(1, 'amd_sev', "property 'nodbg' is given twice ('nodbg=1' and 'no-debug=1'); give it once"),
      1,
      'amd_sev',
    ],
    // combinations
    [
      'kernel-hashes without a kernel',
      'amd_sev: std,kernel-hashes=1',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'amd_sev', "kernel-hashes=1 needs a 'kernel' key; without a kernel QEMU silently measures nothing"),
      1,
      'amd_sev',
    ],
    [
      'initrd without a kernel',
      'initrd: /i',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'initrd', "needs a 'kernel' key; QEMU uses an initrd only with a kernel"),
      1,
      'initrd',
    ],
    [
      'cmdline without a kernel',
      'memory: 64\ncmdline: quiet',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(2, 'cmdline', "needs a 'kernel' key; QEMU uses a cmdline only with a kernel"),
      2,
      'cmdline',
    ],
    [
      'attest hold without SEV',
      'attest: hold',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'attest', "'hold' needs an amd_sev line; without SEV there is no launch measurement to attest"),
      1,
      'attest',
    ],
    [
      'launch without SEV',
      'launch: dh-cert=/a,session=/b',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'launch', 'needs an amd_sev line; a launch session is for an SEV guest'),
      1,
      'launch',
    ],
    [
      'hold-timeout without hold',
      'amd_sev: std\nhold-timeout: 60',
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(2, 'hold-timeout', "needs 'attest: hold' or 'attest: relay'; only a held guest waits"),
      2,
      'hold-timeout',
    ],
  ])('refuses %s', (_name, text, code, message, line, key) => {
    const error = catchSupervisorError(() => parse(text));
    expect({ code: error.code, message: error.message }).toEqual({ code, message });
    if (line !== undefined) expect(error.details).toMatchObject({ file: FILE, line });
    if (key !== undefined) expect(error.details).toMatchObject({ key });
  });

  it('reports the first bad line in file order', () => {
    expect(catchSupervisorError(() => parse('cores: 0\nmemory: 1')).message).toBe(
      `${FILE}:1: cores: invalid value '0'; allowed: an integer number of vCPUs from 1 to 256`,
    );
  });

  it.each([
    [
      'a file name that is no valid VM name',
      '/srv/vms/.hidden.conf',
      'SUP_ERR_CONFIG_BAD_VALUE',
      "/srv/vms/.hidden.conf: the file name gives the VM name '.hidden', which is not valid; allowed: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ],
    [
      'a file not ending in .conf, without a name key',
      '/srv/vms/web.txt',
      'SUP_ERR_CONFIG_MISSING_KEY',
      "/srv/vms/web.txt: no 'name' key, and the file name does not end in '.conf'; add 'name: NAME'",
    ],
    [
      'a file called just .conf',
      '/srv/vms/.conf',
      'SUP_ERR_CONFIG_MISSING_KEY',
      "/srv/vms/.conf: no 'name' key, and the file name does not end in '.conf'; add 'name: NAME'",
    ],
  ])('refuses %s', (_name, file, code, message) => {
    expect(catchSupervisorError(() => parseVmConfig('memory: 64', file))).toEqual({ code, message, details: { file, key: 'name' } });
  });
});

describe('formatVmConfig', () => {
  it('writes every key canonically and keeps the SEV spelling', () => {
    const spec = parse(
      'amd-sev: es,no-debug=yes,cbitpos=51\nkernel: /k\ncmdline: a b\nnet0: tap,ifname=t0\ndisk0: /d.raw\nautostart: on\n' +
        `firmware: file=/f.fd,sha256=${'0'.repeat(64)}\nattest: hold\nhold-timeout: 5\nqmp-deny: a,b`,
    );
    expect(formatVmConfig(spec)).toBe(
      [
        'name: web',
        'memory: 1024',
        'cores: 1',
        'cpu: EPYC-v3',
        'bios: ovmf',
        `firmware: /f.fd,sha256=${'0'.repeat(64)}`,
        'kernel: /k',
        'cmdline: a b',
        'disk0: file=/d.raw,format=raw',
        'net0: tap,ifname=t0',
        'attest: hold',
        'hold-timeout: 5',
        'autostart: 1',
        'serial: file',
        'qmp-deny: a,b',
        'amd-sev: type=es,no-debug=1,cbitpos=51',
        '',
      ].join('\n'),
    );
  });

  it.each([
    ['an empty cmdline', { cmdline: '' }, "cannot write cmdline '': a config value is one non-empty line without surrounding spaces"],
    [
      'a kernel path with a newline',
      { kernel: '/a\nb' },
      "cannot write kernel '/a\nb': a config value is one non-empty line without surrounding spaces",
    ],
    [
      'a cmdline with leading space',
      { kernel: '/k', cmdline: ' quiet' },
      "cannot write cmdline ' quiet': a config value is one non-empty line without surrounding spaces",
    ],
  ])('refuses %s', (_name, change, message) => {
    expect(catchSupervisorError(() => formatVmConfig({ ...DEFAULTS, ...change }))).toEqual({
      code: 'SUP_ERR_CONFIG_BAD_VALUE',
      message,
      details: { key: message.split(' ')[2] },
    });
  });
});

describe('loadVmConfig', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sevsup-vmcfg-'));
    await writeFile(path.join(dir, 'web.conf'), 'memory: 256\nkernel: k/vmlinuz\n');
    await writeFile(path.join(dir, 'big.conf'), `# ${'x'.repeat(MAX_VM_CONFIG_BYTES)}\n`);
    await writeFile(path.join(dir, 'latin1.conf'), Buffer.from([0x23, 0x20, 0xe9, 0x0a]));
    await mkdir(path.join(dir, 'dir.conf'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads by name from vmDir, resolving paths against that directory', async () => {
    const spec = await loadVmConfig('web', { vmDir: dir });
    expect(spec).toMatchObject({ name: 'web', source: path.join(dir, 'web.conf'), memory: 256, kernel: path.join(dir, 'k/vmlinuz') });
  });

  it('loads by path', async () => {
    expect((await loadVmConfig(path.join(dir, 'web.conf'))).memory).toBe(256);
  });

  it('defaults vmDir to /etc/sevsup/vms', async () => {
    expect(DEFAULT_VM_DIR).toBe('/etc/sevsup/vms');
    const error = await catchSupervisorErrorAsync(() => loadVmConfig('surely-absent-vm-4711'));
    expect(error.message).toBe("no VM named 'surely-absent-vm-4711' (/etc/sevsup/vms/surely-absent-vm-4711.conf does not exist)");
  });

  it.each([
    ['a name without a file', 'nope', 'SUP_ERR_VM_NOT_FOUND', (d: string) => `no VM named 'nope' (${d}/nope.conf does not exist)`],
    [
      'an invalid name',
      '..',
      'SUP_ERR_VM_NOT_FOUND',
      () => "no VM named '..': a VM name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ],
    [
      'a path without a file',
      './missing.conf',
      'SUP_ERR_CONFIG_READ',
      () => `cannot read config file ${path.resolve('missing.conf')}: no such file`,
    ],
    ['a directory', '%DIR%/dir.conf', 'SUP_ERR_CONFIG_READ', (d: string) => `cannot read config file ${d}/dir.conf: is a directory`],
    [
      'a file over the size limit',
      '%DIR%/big.conf',
      'SUP_ERR_CONFIG_READ',
      (d: string) =>
        `cannot read config file ${d}/big.conf: it is ${MAX_VM_CONFIG_BYTES + 3} bytes, more than the ${MAX_VM_CONFIG_BYTES} a VM config may have`,
    ],
    [
      'a file that is not UTF-8',
      '%DIR%/latin1.conf',
      'SUP_ERR_CONFIG_READ',
      (d: string) => `cannot read config file ${d}/latin1.conf: it is not valid UTF-8 text`,
    ],
  ])('refuses %s', async (_name, ref, code, message) => {
    const error = await catchSupervisorErrorAsync(() => loadVmConfig(ref.replace('%DIR%', dir), { vmDir: dir }));
    expect({ code: error.code, message: error.message }).toEqual({ code, message: message(dir) });
  });
});

describe('examples/vms', () => {
  const EXAMPLES = path.resolve('examples/vms');
  const ASSETS = path.resolve('.cache/test-assets');

  it('demo-sev.conf: SEV std, nodbg, noks, kernel-hashes, held', async () => {
    expect(await loadVmConfig(path.join(EXAMPLES, 'demo-sev.conf'))).toEqual({
      ...DEFAULTS,
      name: 'demo-sev',
      source: path.join(EXAMPLES, 'demo-sev.conf'),
      memory: 512,
      bios: 'ovmf',
      firmware: { path: path.join(ASSETS, 'ovmf-sev-test.fd') },
      kernel: path.join(ASSETS, 'vmlinuz'),
      initrd: path.join(ASSETS, 'demo-initrd.img'),
      cmdline: 'console=ttyS0 panic=-1',
      attest: 'hold',
      holdTimeout: 300,
      sev: { type: 'std', nodbg: true, noks: true, kernelHashes: true, key: 'amd_sev' },
    });
  });

  it('relayed.conf: attest: relay over mutual TLS', async () => {
    const spec = await loadVmConfig(path.join(EXAMPLES, 'relayed.conf'));
    expect(spec).toMatchObject({ attest: 'relay', holdTimeout: 300, sev: { type: 'es', nodbg: true, noks: true } });
    expect(spec.relay).toEqual({
      url: 'https://owner.example:8443/attest',
      ca: '/etc/sevsup/owner/ca.pem',
      identity: { kind: 'mtls', cert: '/etc/sevsup/host.crt', key: '/etc/sevsup/host.key' },
      timeoutSeconds: 10,
    });
  });

  it('plain.conf: no SEV', async () => {
    const spec = await loadVmConfig(path.join(EXAMPLES, 'plain.conf'));
    expect(spec).toMatchObject({
      name: 'plain',
      bios: 'seabios',
      cores: 2,
      autostart: true,
      serial: 'none',
      qmpAllow: ['query-status', 'query-block'],
    });
    expect(spec.sev).toBeUndefined();
    expect(spec.disks).toEqual([
      { index: 0, file: path.join(EXAMPLES, 'plain-root.qcow2'), format: 'qcow2', readonly: false },
      { index: 1, file: path.join(EXAMPLES, 'plain-data.img'), format: 'raw', readonly: true },
    ]);
    expect(spec.nets).toEqual([{ index: 0, kind: 'user', mac: '52:54:00:12:34:56' }]);
  });

  it("seed-es.conf: the seed's es,nodbg=1,kernel-hashes=1", async () => {
    const spec = await loadVmConfig(path.join(EXAMPLES, 'seed-es.conf'));
    expect(spec.sev).toEqual({ type: 'es', nodbg: true, noks: false, kernelHashes: true, key: 'amd_sev' });
    expect(spec.bios).toBe('ovmf');
  });

  it('proxmox-spelling.conf: amd-sev with long names', async () => {
    const spec = await loadVmConfig(path.join(EXAMPLES, 'proxmox-spelling.conf'));
    expect(spec.sev).toEqual({ type: 'es', nodbg: true, noks: true, kernelHashes: false, key: 'amd-sev' });
  });

  it.each(['demo-sev', 'plain', 'seed-es', 'proxmox-spelling'])('%s.conf survives format → parse', async (name) => {
    const spec = await loadVmConfig(path.join(EXAMPLES, `${name}.conf`));
    expect(parseVmConfig(formatVmConfig(spec), spec.source)).toEqual(spec);
  });
});

describe('attest: relay and its keys', () => {
  const RELAY = ['amd_sev: std', 'attest: relay', 'attest-url: https://owner.example:8443/attest', 'attest-ca: keys/owner-ca.pem'];
  const at = (line: number, key: string, problem: string): string => `${FILE}:${line}: ${key}: ${problem}`;

  it('a bearer token, default per-attempt timeout; relative paths resolve against the file', () => {
    const spec = parse([...RELAY, 'attest-token-file: /etc/sevsup/owner.token', 'hold-timeout: 300'].join('\n'));
    expect(spec).toMatchObject({
      attest: 'relay',
      holdTimeout: 300,
      relay: {
        url: 'https://owner.example:8443/attest',
        ca: `${DIR}/keys/owner-ca.pem`,
        identity: { kind: 'token', tokenFile: '/etc/sevsup/owner.token' },
        timeoutSeconds: 10,
      },
    });
    expect(parse(formatVmConfig(spec))).toEqual(spec);
  });

  it('mutual TLS with an attempt timeout; the canonical text round-trips', () => {
    const spec = parse([...RELAY, 'attest-cert: host.crt', 'attest-key: host.key', 'attest-timeout: 30'].join('\n'));
    expect(spec.relay).toEqual({
      url: 'https://owner.example:8443/attest',
      ca: `${DIR}/keys/owner-ca.pem`,
      identity: { kind: 'mtls', cert: `${DIR}/host.crt`, key: `${DIR}/host.key` },
      timeoutSeconds: 30,
    });
    expect(parse(formatVmConfig(spec))).toEqual(spec);
  });

  it.each<[string, string, string, string, number, string]>([
    [
      'http is refused',
      [...RELAY.slice(0, 2), 'attest-url: http://owner.example/attest'].join('\n'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(3, 'attest-url', 'must be https (got http): the record and any secret travel over it'),
      3,
      'attest-url',
    ],
    [
      'not a URL',
      [...RELAY.slice(0, 2), 'attest-url: owner.example'].join('\n'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        3,
        'attest-url',
        "invalid value 'owner.example'; allowed: an https URL such as https://owner.example:8443/attest (no user:password, no #fragment)",
      ),
      3,
      'attest-url',
    ],
    [
      'credentials in the URL',
      [...RELAY.slice(0, 2), 'attest-url: https://u:p@owner.example/'].join('\n'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        3,
        'attest-url',
        'invalid value; allowed: an https URL such as https://owner.example:8443/attest (no user:password, no #fragment)',
      ),
      3,
      'attest-url',
    ],
    [
      'a fragment',
      [...RELAY.slice(0, 2), 'attest-url: https://owner.example/#x'].join('\n'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(
        3,
        'attest-url',
        'invalid value; allowed: an https URL such as https://owner.example:8443/attest (no user:password, no #fragment)',
      ),
      3,
      'attest-url',
    ],
    [
      'no URL',
      ['amd_sev: std', 'attest: relay', 'attest-ca: ca.pem', 'attest-token-file: t'].join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(2, 'attest', "'relay' needs 'attest-url' (the owner's service, https)"),
      2,
      'attest',
    ],
    [
      'no CA',
      ['amd_sev: std', 'attest: relay', 'attest-url: https://o/', 'attest-token-file: t'].join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(2, 'attest', "'relay' needs 'attest-ca' (the owner's CA certificate, PEM; the system store is never used)"),
      2,
      'attest',
    ],
    [
      'no identity',
      RELAY.join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(
        2,
        'attest',
        "'relay' needs the host's identity: 'attest-cert' and 'attest-key' (mutual TLS) or 'attest-token-file' (bearer token)",
      ),
      2,
      'attest',
    ],
    [
      'a certificate without its key',
      [...RELAY, 'attest-cert: c.crt'].join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(5, 'attest-cert', "needs both 'attest-cert' and 'attest-key' (the client certificate and its private key)"),
      5,
      'attest-cert',
    ],
    [
      'a key without its certificate',
      [...RELAY, 'attest-key: c.key'].join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(5, 'attest-key', "needs both 'attest-cert' and 'attest-key' (the client certificate and its private key)"),
      5,
      'attest-key',
    ],
    [
      'both a certificate and a token',
      [...RELAY, 'attest-cert: c.crt', 'attest-key: c.key', 'attest-token-file: t'].join('\n'),
      'SUP_ERR_CONFIG_CONFLICT',
      at(
        7,
        'attest-token-file',
        'conflicts with attest-cert at line 5; the host proves itself by a client certificate or a token, give one',
      ),
      7,
      'attest-token-file',
    ],
    [
      'a relay key without attest: relay',
      ['amd_sev: std', 'attest: hold', 'attest-url: https://o/'].join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(3, 'attest-url', "needs 'attest: relay'"),
      3,
      'attest-url',
    ],
    [
      'relay without SEV',
      ['attest: relay', 'attest-url: https://o/', 'attest-ca: ca', 'attest-token-file: t'].join('\n'),
      'SUP_ERR_CONFIG_MISSING_KEY',
      at(1, 'attest', "'relay' needs an amd_sev line; without SEV there is no launch measurement to attest"),
      1,
      'attest',
    ],
    [
      'attest-timeout out of range',
      [...RELAY, 'attest-token-file: t', 'attest-timeout: 301'].join('\n'),
      'SUP_ERR_CONFIG_BAD_VALUE',
      at(6, 'attest-timeout', "invalid value '301'; allowed: an integer number of seconds from 1 to 300"),
      6,
      'attest-timeout',
    ],
  ])('%s', (_what, text, code, message, line, key) => {
    expect(catchSupervisorError(() => parse(text))).toEqual({ code, message, details: { file: FILE, line, key } });
  });
});
