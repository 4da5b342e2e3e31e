import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { BaseCommand } from '../base-command.js';
import { services } from '../services.js';
import { openTerminal, readPasswordFromStream } from '../tty-prompt.js';

/** `--json` result of `login` (never the password). */
export interface LoginResult {
  /** System the login is for. */
  system: string;
  /** Registry location name (`default` for any registry without its own login). */
  location: string;
  /** User name saved. */
  username: string;
  /** The login store file. */
  file: string;
}

/** `shifterimg login`: save a registry login for private-image pulls. */
export class Login extends BaseCommand {
  static override summary = 'Save a registry login for pulling private images.';
  static override description = [
    'Prompts on the terminal for the user name and the password (not echoed) of LOCATION, a registry location name known to the gateway ("default" is used for every registry without its own login).',
    'The login is saved in ~/.udiRoot/credentials.json (mode 0600, directory 0700) and sent on pulls only inside the munge-signed authentication header. It never appears on a command line.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> registry.example.org',
    'printf "%s\\n" "$TOKEN" | <%= config.bin %> <%= command.id %> --username ci-bot --password-stdin',
  ];
  static override args = {
    // SECURITY: ignoreStdin, or oclif would read a missing LOCATION from standard input, i.e. the password of
    // --password-stdin, and print it back as the location name.
    location: Args.string({ ignoreStdin: true, description: 'Registry location name', default: 'default' }),
  };
  static override flags = {
    username: Flags.string({ summary: 'User name (prompted for when absent).', helpValue: 'NAME' }),
    'password-stdin': Flags.boolean({
      summary: 'Read the password from the first line of standard input instead of the terminal.',
      // No default: oclif counts a defaulted flag as given and would then demand --username on every login.
      dependsOn: ['username'],
    }),
  };

  async run(): Promise<LoginResult> {
    const { args, flags } = await this.parse(Login);
    const settings = await this.settings(flags);
    const environment = this.environment();
    const store = services().credentialStore(environment);
    let username = flags.username;
    let password: string;
    if (flags['password-stdin'] && username) {
      password = await readPasswordFromStream(services().stdin());
    } else {
      const terminal = openTerminal();
      try {
        username ??= await terminal.ask(`${args.location} username: `, { echo: true });
        password = await terminal.ask(`${args.location} password: `, { echo: false });
      } finally {
        terminal.close();
      }
    }
    await store.save(settings.system, args.location, username, password);
    if (!this.jsonEnabled())
      process.stderr.write(
        `Saved the login of ${username} for ${args.location} on ${settings.system} in ${store.path}\n`,
      );
    return { system: settings.system, location: args.location, username, file: store.path };
  }
}
