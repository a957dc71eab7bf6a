import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareKernelConfig, mergeConfigs, parseKernelConfig } from '../../images/selftest-config.js';

// drivers/net/config of 7.3 (abridged) and Debian's 7.3 kernel config, as read on 2026-12-03.
const WANTED = `CONFIG_CONFIGFS_FS=y
CONFIG_DEBUG_INFO_BTF=y
CONFIG_INET_PSP=y
CONFIG_MACSEC=m
CONFIG_NETDEVSIM=m
CONFIG_NETKIT=y
CONFIG_NET_SCH_FQ=m
CONFIG_PPPOE=y
CONFIG_XDP_SOCKETS=y
CONFIG_SOME_NEW_OPTION=y
`;
const DEBIAN = `CONFIG_CONFIGFS_FS=m
CONFIG_DEBUG_INFO_BTF=y
# CONFIG_INET_PSP is not set
CONFIG_MACSEC=m
# CONFIG_NETDEVSIM is not set
CONFIG_NETKIT=y
CONFIG_NET_SCH_FQ=y
CONFIG_PPPOE=m
CONFIG_XDP_SOCKETS=y
CONFIG_SOME_NEW_OPTION=m
CONFIG_LOCALVERSION="-amd64"
`;

test('a config file: set options with their values, "is not set" as n, the rest ignored', () => {
  const c = parseKernelConfig(`${DEBIAN}\n# a comment\n\n`);
  assert.is(c.get('CONFIG_PPPOE'), 'm');
  assert.is(c.get('CONFIG_INET_PSP'), 'n');
  assert.is(c.get('CONFIG_LOCALVERSION'), '"-amd64"');
  assert.is(c.size, 11);
});

test('built in wanted, a module here: loaded at boot when its module is known, else a gap; not set at all: a gap', () => {
  const { preload, gaps } = compareKernelConfig(parseKernelConfig(WANTED), parseKernelConfig(DEBIAN));
  assert.equal(preload, ['configfs', 'pppoe']);
  assert.equal(gaps, [
    'CONFIG_INET_PSP=y wanted, not set here',
    'CONFIG_NETDEVSIM=m wanted, not set here',
    'CONFIG_SOME_NEW_OPTION=y wanted, a module here that nothing loads at boot',
  ]);
  // Negative control: the kernel the tests were written for needs nothing.
  assert.equal(compareKernelConfig(parseKernelConfig(WANTED), parseKernelConfig(WANTED)), { preload: [], gaps: [] });
});

test("several targets' config files together; a later one's value wins", () => {
  const merged = mergeConfigs(['CONFIG_A=m\nCONFIG_B=y\n', 'CONFIG_A=y\n']);
  assert.is(merged.get('CONFIG_A'), 'y');
  assert.is(merged.get('CONFIG_B'), 'y');
});

test.run();
