<?php
// Verify keygate's X-Keygate-Identity header in a PHP upstream (Laravel,
// Symfony or plain PHP).
//
// keygate signs every request it forwards with a short-lived EdDSA JWT:
// issuer "keygate", audience the API's name in keygate's config. Verify it
// against keygate's JWKS before trusting anything about the caller.
//
// Needs nothing but PHP 7.2 or later: EdDSA is Ed25519, which the sodium
// extension PHP bundles verifies (Debian: php-cli). A JWT library such as
// firebase/php-jwt does the same; this file shows every check it makes.

declare(strict_types=1);

final class KeygateIdentityRefused extends RuntimeException
{
}

function keygate_b64url_decode(string $s): string
{
    if ($s === '' || strspn($s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') !== strlen($s)) {
        throw new KeygateIdentityRefused('malformed JWT');
    }
    $out = base64_decode(str_pad(strtr($s, '-_', '+/'), (int) (ceil(strlen($s) / 4) * 4), '='), true);
    if ($out === false) {
        throw new KeygateIdentityRefused('malformed JWT');
    }
    return $out;
}

// keygate's Ed25519 keys by key id, fetched once (kept in APCu for
// 5 minutes where it is installed, so PHP-FPM workers share them) and
// fetched again when a JWT names a key id not yet seen, at most once a
// minute, so forged key ids cannot make every request call keygate.
function keygate_keys(string $jwksUrl, bool $refresh = false): array
{
    static $memo = [];
    $cacheKey = 'keygate-jwks:' . $jwksUrl;
    $apcu = function_exists('apcu_fetch') && apcu_enabled();
    $entry = $memo[$jwksUrl] ?? ($apcu ? (apcu_fetch($cacheKey) ?: null) : null);
    if ($entry !== null && (!$refresh || time() - $entry['fetched'] < 60)) {
        return $entry['keys'];
    }
    $body = @file_get_contents($jwksUrl, false, stream_context_create(['http' => ['timeout' => 5]]));
    $set = is_string($body) ? json_decode($body, true) : null;
    if (!is_array($set) || !is_array($set['keys'] ?? null)) {
        throw new KeygateIdentityRefused("cannot read keygate's key set");
    }
    $keys = [];
    foreach ($set['keys'] as $k) {
        if (($k['kty'] ?? '') === 'OKP' && ($k['crv'] ?? '') === 'Ed25519' && is_string($k['kid'] ?? null) && is_string($k['x'] ?? null)) {
            $keys[$k['kid']] = keygate_b64url_decode($k['x']);
        }
    }
    $memo[$jwksUrl] = ['keys' => $keys, 'fetched' => time()];
    if ($apcu) {
        apcu_store($cacheKey, $memo[$jwksUrl], 300);
    }
    return $keys;
}

/**
 * Returns the identity claims of a request, or throws KeygateIdentityRefused.
 *
 * @param ?string $jwt     the request's X-Keygate-Identity header
 * @param string  $jwksUrl keygate's https://<admin>/.well-known/jwks.json
 * @param string  $api     the API's name in keygate's config (the JWT's audience)
 */
function verify_keygate_identity(?string $jwt, string $jwksUrl, string $api, int $leeway = 5): array
{
    if ($jwt === null || $jwt === '') {
        throw new KeygateIdentityRefused('no X-Keygate-Identity header');
    }
    $parts = explode('.', $jwt);
    if (count($parts) !== 3) {
        throw new KeygateIdentityRefused('malformed JWT');
    }
    [$h64, $p64, $s64] = $parts;
    $header = json_decode(keygate_b64url_decode($h64), true);
    if (!is_array($header) || ($header['alg'] ?? null) !== 'EdDSA' || !is_string($header['kid'] ?? null)) {
        throw new KeygateIdentityRefused('not an EdDSA JWT with a key id');
    }
    $keys = keygate_keys($jwksUrl);
    if (!isset($keys[$header['kid']])) {
        $keys = keygate_keys($jwksUrl, true);
    }
    $key = $keys[$header['kid']] ?? null;
    if ($key === null || strlen($key) !== SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES) {
        throw new KeygateIdentityRefused('unknown key id');
    }
    $signature = keygate_b64url_decode($s64);
    if (strlen($signature) !== SODIUM_CRYPTO_SIGN_BYTES || !sodium_crypto_sign_verify_detached($signature, $h64 . '.' . $p64, $key)) {
        throw new KeygateIdentityRefused('bad signature');
    }
    $claims = json_decode(keygate_b64url_decode($p64), true);
    if (!is_array($claims)) {
        throw new KeygateIdentityRefused('malformed claims');
    }
    foreach (['iss', 'aud', 'sub', 'iat', 'exp'] as $required) {
        if (!isset($claims[$required])) {
            throw new KeygateIdentityRefused("no $required claim");
        }
    }
    $now = time();
    if ($claims['iss'] !== 'keygate') {
        throw new KeygateIdentityRefused('wrong issuer');
    }
    if (!in_array($api, (array) $claims['aud'], true)) {
        throw new KeygateIdentityRefused('wrong audience');
    }
    if (!is_int($claims['exp']) || $claims['exp'] + $leeway <= $now) {
        throw new KeygateIdentityRefused('expired');
    }
    if (isset($claims['nbf']) && (!is_int($claims['nbf']) || $claims['nbf'] - $leeway > $now)) {
        throw new KeygateIdentityRefused('not valid yet');
    }
    return $claims;
}

// In a Laravel middleware, for example:
//
//   try {
//       $claims = verify_keygate_identity($request->header('X-Keygate-Identity'), config('services.keygate.jwks'), 'cannmenus');
//   } catch (KeygateIdentityRefused $e) {
//       abort(401);
//   }
//   $request->attributes->set('keygate', $claims);  // ['org'], ['scopes'], ['entitlements']['states'] ([] means unrestricted)

// php verify_identity.php JWKS_URL API < header-value
if (PHP_SAPI === 'cli' && isset($argv[0]) && realpath($argv[0]) === __FILE__) {
    try {
        $c = verify_keygate_identity(trim((string) stream_get_contents(STDIN)), $argv[1], $argv[2]);
    } catch (KeygateIdentityRefused $e) {
        fwrite(STDERR, 'refused: ' . $e->getMessage() . "\n");
        exit(1);
    }
    echo json_encode([
        'org' => $c['org'], 'org_slug' => $c['org_slug'], 'plan' => $c['plan'],
        'scopes' => $c['scopes'], 'entitlements' => $c['entitlements'],
    ]), "\n";
}
