import { runProtocolDemo } from './protocol-demo.js';
await runProtocolDemo();
