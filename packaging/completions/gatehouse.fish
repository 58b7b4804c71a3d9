# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gatehouse_global_optspecs
    string join \n config= h/help V/version
end

function __fish_gatehouse_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gatehouse_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gatehouse_using_subcommand
    set -l cmd (__fish_gatehouse_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gatehouse -n "__fish_gatehouse_needs_command" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_needs_command" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -s V -l version -d 'Print version'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "serve" -d 'Run the HTTP server'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "check-config" -d 'Validate the configuration and exit'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "doctor" -d 'Check a running install: config, data dir, listener, store, Redis clock, public_url against the cookie settings and the proxy headers of the last proxied request'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "user" -d 'Manage accounts (passwords are read from a prompt or standard input, never arguments)'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "group" -d 'Manage groups and their members (forward-auth rules and OIDC clients admit groups)'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "client" -d 'The OpenID Connect clients: list the configured ones, make a secret for a new one'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "ban" -d 'List or lift the login bans of brute-force regulation'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "backup" -d 'Write a consistent copy of the database to FILE (works while the server runs)'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "restore" -d 'Replace the database with a backup (refused while a server holds the data dir)'
complete -c gatehouse -n "__fish_gatehouse_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand serve" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand serve" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand check-config" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand doctor" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "add" -d 'Create an account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "list" -d 'List accounts'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "set-role" -d 'Change an account\'s role (`user` or `admin`); ends its sessions'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "disable" -d 'Disable an account and end its sessions'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "enable" -d 'Enable a disabled account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "passwd" -d 'Set a new password; ends every session of the account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "reset-mfa" -d 'Remove every second factor (TOTP, passkeys, recovery codes) of a locked-out account; ends its sessions and its logins in flight'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and not __fish_seen_subcommand_from add list set-role disable enable passwd reset-mfa help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from add" -l role -r
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from add" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from list" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from set-role" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from set-role" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from disable" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from enable" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from passwd" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from reset-mfa" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from reset-mfa" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create an account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List accounts'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "set-role" -d 'Change an account\'s role (`user` or `admin`); ends its sessions'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "disable" -d 'Disable an account and end its sessions'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Enable a disabled account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Set a new password; ends every session of the account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "reset-mfa" -d 'Remove every second factor (TOTP, passkeys, recovery codes) of a locked-out account; ends its sessions and its logins in flight'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -f -a "add" -d 'Create a group (a name of a-z, 0-9, \'_\', \'.\', \'-\')'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -f -a "del" -d 'Delete a group; its members leave it'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -f -a "list" -d 'List the groups with their member counts'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -f -a "add-member" -d 'Add the account with EMAIL to the group'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -f -a "remove-member" -d 'Take the account with EMAIL out of the group'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and not __fish_seen_subcommand_from add del list add-member remove-member help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from add" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from del" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from del" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from list" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from add-member" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from add-member" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from remove-member" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from remove-member" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create a group (a name of a-z, 0-9, \'_\', \'.\', \'-\')'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from help" -f -a "del" -d 'Delete a group; its members leave it'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the groups with their member counts'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from help" -f -a "add-member" -d 'Add the account with EMAIL to the group'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from help" -f -a "remove-member" -d 'Take the account with EMAIL out of the group'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand group; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and not __fish_seen_subcommand_from list secret help" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and not __fish_seen_subcommand_from list secret help" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and not __fish_seen_subcommand_from list secret help" -f -a "list" -d 'List the clients configured in [[oidc.clients]]'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and not __fish_seen_subcommand_from list secret help" -f -a "secret" -d 'Print a new random client secret and its argon2id hash (put the hash in `secret`, give the secret to the application)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and not __fish_seen_subcommand_from list secret help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from list" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from secret" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from secret" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the clients configured in [[oidc.clients]]'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from help" -f -a "secret" -d 'Print a new random client secret and its argon2id hash (put the hash in `secret`, give the secret to the application)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand client; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and not __fish_seen_subcommand_from list lift help" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and not __fish_seen_subcommand_from list lift help" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and not __fish_seen_subcommand_from list lift help" -f -a "list" -d 'List the live bans'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and not __fish_seen_subcommand_from list lift help" -f -a "lift" -d 'Lift the ban on an email or an IP address (and clear its failure count)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and not __fish_seen_subcommand_from list lift help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from list" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from lift" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from lift" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the live bans'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from help" -f -a "lift" -d 'Lift the ban on an email or an IP address (and clear its failure count)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand ban; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand backup" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand backup" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand restore" -l config -d 'Path of the TOML config file (before or after the subcommand)' -r -F
complete -c gatehouse -n "__fish_gatehouse_using_subcommand restore" -l keep-sessions -d 'Also restore the sessions in the backup. Off by default: it would bring back every session revoked since the backup was taken'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand restore" -s h -l help -d 'Print help'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "serve" -d 'Run the HTTP server'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "check-config" -d 'Validate the configuration and exit'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "doctor" -d 'Check a running install: config, data dir, listener, store, Redis clock, public_url against the cookie settings and the proxy headers of the last proxied request'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "user" -d 'Manage accounts (passwords are read from a prompt or standard input, never arguments)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "group" -d 'Manage groups and their members (forward-auth rules and OIDC clients admit groups)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "client" -d 'The OpenID Connect clients: list the configured ones, make a secret for a new one'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "ban" -d 'List or lift the login bans of brute-force regulation'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "backup" -d 'Write a consistent copy of the database to FILE (works while the server runs)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "restore" -d 'Replace the database with a backup (refused while a server holds the data dir)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and not __fish_seen_subcommand_from serve check-config doctor user group client ban backup restore help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Create an account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List accounts'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "set-role" -d 'Change an account\'s role (`user` or `admin`); ends its sessions'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "disable" -d 'Disable an account and end its sessions'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "enable" -d 'Enable a disabled account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "passwd" -d 'Set a new password; ends every session of the account'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "reset-mfa" -d 'Remove every second factor (TOTP, passkeys, recovery codes) of a locked-out account; ends its sessions and its logins in flight'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from group" -f -a "add" -d 'Create a group (a name of a-z, 0-9, \'_\', \'.\', \'-\')'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from group" -f -a "del" -d 'Delete a group; its members leave it'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from group" -f -a "list" -d 'List the groups with their member counts'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from group" -f -a "add-member" -d 'Add the account with EMAIL to the group'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from group" -f -a "remove-member" -d 'Take the account with EMAIL out of the group'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from client" -f -a "list" -d 'List the clients configured in [[oidc.clients]]'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from client" -f -a "secret" -d 'Print a new random client secret and its argon2id hash (put the hash in `secret`, give the secret to the application)'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from ban" -f -a "list" -d 'List the live bans'
complete -c gatehouse -n "__fish_gatehouse_using_subcommand help; and __fish_seen_subcommand_from ban" -f -a "lift" -d 'Lift the ban on an email or an IP address (and clear its failure count)'
