import { runMain } from '@moat/runtime';
import { configSchema, start } from './index.js';

await runMain('router', configSchema, start);
