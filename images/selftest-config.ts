// The kernel configuration the selftests ask for (each target's `config` file, what netdev's CI
// builds its kernels with) against the guest kernel's own (its module tree's `config`).
//
// A Debian kernel differs in two ways. Some options the tests want built in are modules there
// (CONFIG_PPPOE=m: the PPPoE GRO handler exists only once pppoe is loaded, and nothing in the
// GRO test loads it; CONFIG_CONFIGFS_FS=m: /sys/kernel/config exists only once configfs is
// loaded): those modules are loaded at boot, so the kernel has what a built-in option gives.
// Others are not set at all (CONFIG_INET_PSP): no module can give them, and the report names
// them as the reason a test cannot pass on this kernel.

/** An option's value: y, m, n (not set), or a string or number. */
export type ConfigValues = ReadonlyMap<string, string>;

/**
 * The module that provides an option the tests want built in (=y), for options that Debian's
 * kernels build as modules. From the Kbuild line that names each (obj-$(CONFIG_PPPOE) +=
 * pppoe.o in drivers/net/ppp/Makefile, and so on).
 */
export const MODULE_OF_OPTION: Readonly<Record<string, string>> = {
  CONFIG_CONFIGFS_FS: 'configfs',
  CONFIG_PPP: 'ppp_generic',
  CONFIG_PPPOE: 'pppoe',
  CONFIG_TLS: 'tls',
  CONFIG_NET_CLS_BPF: 'cls_bpf',
  CONFIG_NET_SCH_INGRESS: 'sch_ingress',
  CONFIG_NETKIT: 'netkit',
};

/** A config file's options: `CONFIG_X=v`, and `# CONFIG_X is not set` as n. */
export function parseKernelConfig(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line.trim());
    if (set) values.set(set[1]!, set[2]!);
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line.trim());
    if (unset) values.set(unset[1]!, 'n');
  }
  return values;
}

export interface ConfigComparison {
  /** Modules to load at boot: options wanted built in that this kernel has as modules. */
  readonly preload: readonly string[];
  /** What this kernel cannot give: "CONFIG_X=y wanted, not set here" and the like. */
  readonly gaps: readonly string[];
}

/** What the wanted options need from this kernel: modules to load, and what it lacks. */
export function compareKernelConfig(wanted: ConfigValues, kernel: ConfigValues): ConfigComparison {
  const preload: string[] = [];
  const gaps: string[] = [];
  for (const [option, want] of [...wanted].sort(([a], [b]) => a.localeCompare(b))) {
    const have = kernel.get(option) ?? 'n';
    if (have === want || (want === 'm' && have === 'y')) continue;
    if (want === 'y' && have === 'm') {
      const module = MODULE_OF_OPTION[option];
      if (module !== undefined) preload.push(module);
      else gaps.push(`${option}=y wanted, a module here that nothing loads at boot`);
      continue;
    }
    gaps.push(`${option}=${want} wanted, ${have === 'n' ? 'not set' : `=${have}`} here`);
  }
  return { preload, gaps };
}

/** The options of several targets' config files together; a later file's value wins. */
export function mergeConfigs(texts: readonly string[]): Map<string, string> {
  const merged = new Map<string, string>();
  for (const text of texts) for (const [k, v] of parseKernelConfig(text)) merged.set(k, v);
  return merged;
}
