import { COMMANDS } from './commands.js';

/** One flag as the snapshot records it. */
export interface FlagSurface {
  name: string;
  type: 'boolean' | 'option';
  char?: string;
  multiple?: boolean;
  allowNo?: boolean;
  required?: boolean;
  dependsOn?: string[];
}

/** One command as the snapshot records it. */
export interface CommandSurface {
  command: string;
  args: Array<{ name: string; required: boolean }>;
  flags: FlagSurface[];
}

interface FlagLike {
  type: 'boolean' | 'option';
  char?: string;
  multiple?: boolean;
  allowNo?: boolean;
  required?: boolean;
  dependsOn?: string[];
}

/**
 * The public command-line surface (commands, arguments, flags) that `command-snapshot.json` pins, so a breaking
 * change shows up as a diff in review.
 */
export function commandSurface(): CommandSurface[] {
  return Object.entries(COMMANDS)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([command, cls]) => {
      const flagDefinitions = {
        ...cls.baseFlags,
        ...(cls.flags ?? {}),
        ...(cls.enableJsonFlag ? { json: { type: 'boolean' } } : {}),
      } as Record<string, FlagLike>;
      const flags = Object.entries(flagDefinitions)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, flag]) => {
          const surface: FlagSurface = { name, type: flag.type };
          if (flag.char) surface.char = flag.char;
          if (flag.multiple) surface.multiple = true;
          if (flag.allowNo) surface.allowNo = true;
          if (flag.required) surface.required = true;
          if (flag.dependsOn?.length) surface.dependsOn = [...flag.dependsOn];
          return surface;
        });
      const args = Object.entries((cls.args ?? {}) as Record<string, { required?: boolean }>).map(([name, arg]) => ({
        name,
        required: arg.required === true,
      }));
      return { command, args, flags };
    });
}
