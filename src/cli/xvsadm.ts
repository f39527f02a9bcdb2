#!/usr/bin/env node
import { main } from './xvsadm-main.js';

await main();
