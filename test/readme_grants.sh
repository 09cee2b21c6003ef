# test/readme_grants.sh: the README's privilege blocks (sourced, not run).
# readme_grants NAME prints the ```sql block that follows the line
# "<!-- grants: NAME -->" in README.md, so tests grant roles exactly as the
# README tells users to; it fails when there is no such block.
readme_grants() {
    awk -v tag="<!-- grants: $1 -->" '
        $0 == tag { want = 1; next }
        want && /^```sql/ { inside = 1; next }
        inside && /^```/ { found = 1; exit }
        inside { print }
        END { exit found ? 0 : 1 }' "$AEGIS_TOP/README.md"
}
