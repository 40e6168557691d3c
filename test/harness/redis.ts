export { startRedis, type RunningRedis } from '../../local/redis.js';
