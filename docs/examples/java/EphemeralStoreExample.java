// Use ephemeral-store from Java 17+ with the JDK only (java.net.http), run as
// a single source file:
//
//   java EphemeralStoreExample.java --endpoint https://ephemeral-store:8087 \
//       --cert myuser.crt --key myuser.key --cacert rootCA.crt
//
// The same steps as docs/examples/python: put, get, compare-and-swap, and the
// handling of the API's error codes (docs/openapi.yaml, schema ErrorCode),
// over mutual TLS. The key must be PKCS#8 PEM ("BEGIN PRIVATE KEY", as
// `ephemeral-store certs` writes it; convert others with
// `openssl pkcs8 -topk8 -nocrypt`). JSON is read with a regular expression
// to stay dependency-free; use a JSON library in real code.
// Exit code 0 when every step behaved as the API promises.

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class EphemeralStoreExample {

    /** An error answer: its HTTP status and the stable code to compare. */
    static final class StoreException extends Exception {
        final int status;
        final String code;

        StoreException(int status, String code, String message) {
            super(status + " " + code + ": " + message);
            this.status = status;
            this.code = code;
        }
    }

    static final Pattern CODE = Pattern.compile("\"code\"\\s*:\\s*\"([a-z_]+)\"");
    static final Pattern MESSAGE = Pattern.compile("\"message\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"");
    static final Pattern REVISION = Pattern.compile("\"revision\"\\s*:\\s*(\\d+)");

    final HttpClient http;
    final String endpoint;

    EphemeralStoreExample(String endpoint, Path cert, Path key, Path cacert) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        int i = 0;
        for (Certificate ca : cf.generateCertificates(new ByteArrayInputStream(Files.readAllBytes(cacert)))) {
            trust.setCertificateEntry("ca" + i++, ca);
        }
        KeyStore identity = KeyStore.getInstance("PKCS12");
        identity.load(null, null);
        char[] none = new char[0];
        Certificate[] chain = cf.generateCertificates(new ByteArrayInputStream(Files.readAllBytes(cert))).toArray(new Certificate[0]);
        identity.setKeyEntry("client", privateKey(key), none, chain);

        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(identity, none);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        this.http = HttpClient.newBuilder().sslContext(tls).connectTimeout(Duration.ofSeconds(10)).build();
        this.endpoint = endpoint.replaceAll("/+$", "");
    }

    static PrivateKey privateKey(Path file) throws Exception {
        String pem = Files.readString(file);
        if (!pem.contains("-----BEGIN PRIVATE KEY-----")) {
            throw new IllegalArgumentException(file + ": want a PKCS#8 key (BEGIN PRIVATE KEY); convert with openssl pkcs8 -topk8 -nocrypt");
        }
        String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(b64));
        try {
            return KeyFactory.getInstance("EC").generatePrivate(spec);
        } catch (java.security.spec.InvalidKeySpecException notEC) {
            return KeyFactory.getInstance("RSA").generatePrivate(spec);
        }
    }

    /** The key escaped whole, "/" too, so that nothing between cleans the path. */
    static String keyPath(String key) {
        return "/v1/kv/" + URLEncoder.encode(key, StandardCharsets.UTF_8).replace("+", "%20");
    }

    HttpResponse<byte[]> send(HttpRequest.Builder b) throws IOException, InterruptedException, StoreException {
        HttpResponse<byte[]> resp = http.send(b.timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofByteArray());
        if (resp.statusCode() >= 400) {
            String body = new String(resp.body(), StandardCharsets.UTF_8);
            Matcher c = CODE.matcher(body), m = MESSAGE.matcher(body);
            throw new StoreException(resp.statusCode(), c.find() ? c.group(1) : "", m.find() ? m.group(1) : body);
        }
        return resp;
    }

    /** Writes; prevRevision makes it a compare-and-swap (0: create only). Returns the new revision. */
    long put(String key, byte[] value, Long prevRevision) throws Exception {
        String q = prevRevision == null ? "" : "?prev_revision=" + prevRevision;
        HttpResponse<byte[]> resp = send(HttpRequest.newBuilder(URI.create(endpoint + keyPath(key) + q))
                .header("Content-Type", "application/octet-stream")
                .PUT(HttpRequest.BodyPublishers.ofByteArray(value)));
        Matcher m = REVISION.matcher(new String(resp.body(), StandardCharsets.UTF_8));
        if (!m.find()) {
            throw new IOException("no revision in the answer to PUT " + key);
        }
        return Long.parseLong(m.group(1));
    }

    /** The value and its modify revision. */
    Map.Entry<byte[], Long> get(String key) throws Exception {
        HttpResponse<byte[]> resp = send(HttpRequest.newBuilder(URI.create(endpoint + keyPath(key))).GET());
        long rev = Long.parseLong(resp.headers().firstValue("ES-Modify-Revision").orElseThrow());
        return Map.entry(resp.body(), rev);
    }

    void delete(String key, long prevRevision) throws Exception {
        send(HttpRequest.newBuilder(URI.create(endpoint + keyPath(key) + "?prev_revision=" + prevRevision)).DELETE());
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        args.put("endpoint", System.getenv().getOrDefault("ES_ENDPOINT", "https://localhost:8087"));
        args.put("cert", System.getenv("ES_CERT"));
        args.put("key", System.getenv("ES_KEY"));
        args.put("cacert", System.getenv("ES_CACERT"));
        args.put("prefix", "examples/java/");
        for (int i = 0; i < argv.length; i++) {
            String name = argv[i].replaceFirst("^--", "");
            if (!argv[i].startsWith("--") || !args.containsKey(name) || i + 1 == argv.length) {
                System.err.println("usage: java EphemeralStoreExample.java --endpoint URL --cert FILE --key FILE --cacert FILE [--prefix P]");
                System.exit(64);
            }
            args.put(name, argv[++i]);
        }
        for (String name : new String[] {"cert", "key", "cacert"}) {
            if (args.get(name) == null) {
                System.err.println("--" + name + " (or ES_" + name.toUpperCase() + ") is required");
                System.exit(64);
            }
        }
        System.exit(run(args));
    }

    static int run(Map<String, String> args) throws Exception {
        EphemeralStoreExample store = new EphemeralStoreExample(args.get("endpoint"),
                Path.of(args.get("cert")), Path.of(args.get("key")), Path.of(args.get("cacert")));
        String prefix = args.get("prefix");
        String key = prefix + "greeting";
        try {
            // 1. Create the key; prev_revision=0 refuses to overwrite one.
            long created = store.put(key, "hello".getBytes(StandardCharsets.UTF_8), 0L);
            System.out.println("put " + key + " revision=" + created);

            // 2. Read it back with its revision.
            Map.Entry<byte[], Long> got = store.get(key);
            long rev = got.getValue();
            System.out.println("get " + key + " value=" + new String(got.getKey(), StandardCharsets.UTF_8) + " revision=" + rev);

            // 3. Compare-and-swap: succeeds only while the key is still at rev.
            long swapped = store.put(key, "hello again".getBytes(StandardCharsets.UTF_8), rev);
            System.out.println("cas " + key + " revision=" + swapped);

            // 4. The same swap again is stale: 412 revision_mismatch, nothing written.
            try {
                store.put(key, "lost update".getBytes(StandardCharsets.UTF_8), rev);
                System.err.println("error: a stale compare-and-swap was accepted");
                return 1;
            } catch (StoreException e) {
                if (!e.code.equals("revision_mismatch")) {
                    throw e;
                }
                System.out.println("cas refused: code=" + e.code + " status=" + e.status);
            }

            // 5. A missing key: 404 key_not_found.
            try {
                store.get(prefix + "missing");
                System.err.println("error: a missing key was found");
                return 1;
            } catch (StoreException e) {
                if (!e.code.equals("key_not_found")) {
                    throw e;
                }
                System.out.println("get missing: code=" + e.code + " status=" + e.status);
            }

            got = store.get(key);
            if (!new String(got.getKey(), StandardCharsets.UTF_8).equals("hello again")) {
                System.err.println("error: read " + new String(got.getKey(), StandardCharsets.UTF_8) + " after the swap");
                return 1;
            }
            store.delete(key, got.getValue());
            System.out.println("deleted " + key);
            return 0;
        } catch (StoreException e) {
            // Any other code: say it and fail. For a write, no_quorum means
            // the outcome is unknown; read before writing again.
            System.err.println("error: " + e.getMessage());
            return 2;
        }
    }
}
