export { COMMANDS } from './commands.js';
export { BaseCommand, errorEnvelope, toCliError, type ErrorEnvelope } from './base-command.js';
export { CLI_ENV, readCliEnvironment, type CliEnvironment } from './env.js';
export { DEFAULT_UDIROOT_CONF, loadCliConfig, resolveConfigPath, type CliConfig } from './cli-config.js';
export { CredentialStore } from './credential-store.js';
export { parseImageArgument, type ImageArgument } from './image-argument.js';
export { useServices, type CliServices, type GatewayApi } from './services.js';
export { execute } from '@oclif/core/execute';
