export * from './parse-udiroot-conf.js';
