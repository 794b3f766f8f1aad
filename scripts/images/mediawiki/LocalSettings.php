<?php
# Written by the atrium/mediawiki image; `atrium-app` copies it from
# /usr/share/atrium/LocalSettings.php to /var/lib/mediawiki-state/LocalSettings.php
# (where /etc/mediawiki/LocalSettings.php points) at every start, migrate and
# runner, once the wiki is installed: install.php refuses to run while a
# LocalSettings.php exists.
# The wiki's own settings (secret key, database type, ...) were written by
# maintenance/install.php into the state volume at the first start, as
# LocalSettings.generated.php; the container's environment then wins, so the
# server URL, the database and its password follow the environment without
# rewriting files. Without MW_SERVER, the server URL is the one `atrium-app
# server` saved in the volume.
require_once '/var/lib/mediawiki-state/LocalSettings.generated.php';

$atriumEnv = static function ( string $name ): ?string {
	$value = getenv( $name );
	return ( $value === false || $value === '' ) ? null : $value;
};
$atriumSaved = @file_get_contents( '/var/lib/mediawiki-state/server' );
$wgServer = $atriumEnv( 'MW_SERVER' ) ?? ( $atriumSaved ? trim( $atriumSaved ) : $wgServer );
unset( $atriumSaved );
$wgCanonicalServer = $wgServer;
$wgSitename = $atriumEnv( 'MW_SITE_NAME' ) ?? $wgSitename;
$wgDBserver = $atriumEnv( 'MW_DB_HOST' ) ?? $wgDBserver;
$wgDBname = $atriumEnv( 'MW_DB_NAME' ) ?? $wgDBname;
$wgDBuser = $atriumEnv( 'MW_DB_USER' ) ?? $wgDBuser;
$wgDBpassword = $atriumEnv( 'MW_DB_PASSWORD' ) ?? $wgDBpassword;
unset( $atriumEnv );

# Served at the root of its own host name.
$wgScriptPath = '';
$wgResourceBasePath = $wgScriptPath;
# Uploads in the state volume, served by apache2 at /images.
$wgEnableUploads = true;
$wgUploadDirectory = '/var/lib/mediawiki-state/images';
$wgUploadPath = '/images';
# Caches that survive a restart of PHP but not of the container.
$wgMainCacheType = CACHE_ACCEL;
$wgCacheDirectory = '/var/lib/mediawiki/cache';
