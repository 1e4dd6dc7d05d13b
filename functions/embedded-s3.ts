/**
 * An in-process S3 server for the zero-configuration demo and the default test run:
 * @20minutes/s3rver (pure JS, verifies SigV4 and presigned URLs), patched in patches/ for
 * the current AWS SDK. Bound to 127.0.0.1 only.
 */
import { mkdir } from "node:fs/promises";
import S3rver from "@20minutes/s3rver";

export interface EmbeddedS3 {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  close(): Promise<void>;
}

// s3rver accepts only its fixed built-in credentials.
const S3RVER_KEY = "S3RVER";

export async function startEmbeddedS3(options: { directory: string; bucket: string; port?: number }): Promise<EmbeddedS3> {
  await mkdir(options.directory, { recursive: true });
  const server = new S3rver({
    address: "127.0.0.1",
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    configureBuckets: [{ name: options.bucket }],
  });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    accessKeyId: S3RVER_KEY,
    secretAccessKey: S3RVER_KEY,
    bucket: options.bucket,
    async close() {
      // Keep-alive sockets from the SDK would otherwise hold close() open.
      server.httpServer?.closeAllConnections();
      await server.close();
    },
  };
}
